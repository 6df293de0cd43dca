// mpi-ranks: 2 3
// GradReducer under mpirun: the reduced buffer equals the float64 sum of the
// ranks' buffers, buckets progress on the communication thread while the main
// thread stays out of MPI, and the result is bit-identical across steps and
// ranks (tests/grad_reducer_checks.h, shared with the thread-rank tests).
#include <gtest/gtest.h>

#include "../grad_reducer_checks.h"
#include "mpi_test.h"

using namespace lintrain;

TEST(GradReducer, ReducesToTheSumOfEveryRanksBufferUnderMpi) {
  auto world = mpi_runtime().world();
  for (size_t bucket_bytes : grad_checks::kBucketBytes) grad_checks::check_reduces_to_sum(*world, bucket_bytes);
}

TEST(GradReducer, OverlapsWithWorkOnAnotherCommunicator) {
  // The main thread runs collectives on an "SP" communicator while the
  // reducer's thread reduces on the world: both progress (MPI_THREAD_MULTIPLE).
  auto world = mpi_runtime().world();
  auto other = world->split(0, world->rank());
  const ParamTable table = grad_checks::test_table();
  FlatBuffer grads(table);
  for (int64_t j = 0; j < grads.numel(); ++j) grads.data()[j] = 1.0f;
  GradReducer red(table, grads, *world, 4096);
  for (int v = static_cast<int>(table.size()) - 1; v >= 0; --v) {
    red.mark_ready(v);
    float x = 1.0f;
    other->all_reduce(&x, 1);  // "LASP-2 backward" of the next layer
    EXPECT_EQ(x, static_cast<float>(world->size()));
  }
  red.finish();
  size_t bad = 0;
  for (int64_t j = 0; j < grads.numel(); ++j) bad += grads.data()[j] != static_cast<float>(world->size());
  EXPECT_EQ(bad, 0u);
}
