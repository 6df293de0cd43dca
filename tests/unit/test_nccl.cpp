// NcclCommunicator on one GPU (a group of one rank: collectives are copies on
// the device, which still runs every NCCL call and the in-place paths). With
// several GPUs, tests/mpi/test_mpi_nccl.cpp runs the full suite across ranks.
// Skips without a GPU or without NCCL in the build.
#include <gtest/gtest.h>

#include "../comm_conformance.h"
#include "../nccl_staging.h"
#include "parallel/nccl/nccl_communicator.h"
#include "runtime/device.h"

using namespace lintrain;

TEST(NcclCommunicator, ConformanceOnOneGpu) {
  if (!LINTRAIN_HAS_NCCL) GTEST_SKIP() << "built without NCCL: the NCCL communicator is not exercised";
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device: the NCCL communicator is not exercised";
  auto self = make_self_communicator();
  nccl_staging::StagingCommunicator c(make_nccl_communicator(*self, 0));
  EXPECT_EQ(c.name(), "nccl");
  EXPECT_EQ(c.size(), 1);
  conformance::run_all(c);
}
