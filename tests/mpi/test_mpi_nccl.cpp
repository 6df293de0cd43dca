// mpi-ranks: 2
// NcclCommunicator across ranks, one GPU each (device = local rank), the NCCL
// unique id broadcast over MPI: the conformance suite through device buffers.
// Skips (on every rank alike) unless this node has a GPU per rank.
#include <gtest/gtest.h>

#include "../comm_conformance.h"
#include "../nccl_staging.h"
#include "mpi_test.h"
#include "parallel/nccl/nccl_communicator.h"
#include "runtime/device.h"

using namespace lintrain;

TEST(NcclCommunicator, ConformanceAcrossRanks) {
  MpiRuntime& mpi = mpi_runtime();
  if (!LINTRAIN_HAS_NCCL) GTEST_SKIP() << "built without NCCL";
  if (cuda_device_count() < mpi.local_size())
    GTEST_SKIP() << "needs " << mpi.local_size() << " GPUs on this node, found " << cuda_device_count();
  auto world = mpi.world();
  nccl_staging::StagingCommunicator c(make_nccl_communicator(*world, mpi.local_rank()));
  EXPECT_EQ(c.size(), mpi.size());
  conformance::run_all(c);
}
