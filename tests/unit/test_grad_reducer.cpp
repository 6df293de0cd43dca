// GradReducer: bucket layout (reverse table order, whole tensors, tiling the
// buffer), and the reduction under 1-3 thread ranks against the float64 sum
// of every rank's buffer, marking in a different random order on each rank.
// tests/mpi/test_mpi_grad_reducer.cpp runs the same checks under mpirun.
#include <gtest/gtest.h>

#include "../grad_reducer_checks.h"
#include "parallel/thread_communicator.h"
#include "runtime/error.h"

using namespace lintrain;

TEST(GradReducer, BucketsAreWholeTensorsInReverseOrderTilingTheBuffer) {
  const ParamTable t = grad_checks::test_table();
  FlatBuffer grads(t);
  auto self = make_self_communicator();
  const int n = static_cast<int>(t.size());
  for (size_t bucket_bytes : grad_checks::kBucketBytes) {
    GradReducer red(t, grads, *self, bucket_bytes);
    const auto& b = red.buckets();
    ASSERT_FALSE(b.empty());
    int64_t end = t.buffer_numel();
    int next_last = n - 1;
    for (size_t k = 0; k < b.size(); ++k) {
      SCOPED_TRACE(testing::Message() << "bucket_bytes " << bucket_bytes << " bucket " << k);
      EXPECT_EQ(b[k].last_view, next_last);  // reverse table order, no tensor skipped
      EXPECT_LE(b[k].first_view, b[k].last_view);
      EXPECT_EQ(b[k].offset, t.view(b[k].first_view).offset);
      EXPECT_EQ(b[k].offset + b[k].numel, end);  // contiguous, tiles the buffer
      const size_t bytes = static_cast<size_t>(b[k].numel) * sizeof(float);
      if (b[k].first_view != b[k].last_view) {
        EXPECT_LE(bytes, bucket_bytes);
      }
      if (b[k].first_view > 0) {  // greedy: the next tensor would not have fit
        EXPECT_GT(static_cast<size_t>(end - t.view(b[k].first_view - 1).offset) * sizeof(float), bucket_bytes);
      }
      for (int v = b[k].first_view; v <= b[k].last_view; ++v) EXPECT_EQ(red.bucket_of(v), static_cast<int>(k));
      end = b[k].offset;
      next_last = b[k].first_view - 1;
    }
    EXPECT_EQ(end, 0);
    EXPECT_EQ(next_last, -1);
  }
  GradReducer one_byte(t, grads, *self, 1);
  EXPECT_EQ(one_byte.buckets().size(), t.size());
  GradReducer whole(t, grads, *self);
  EXPECT_EQ(whole.buckets().size(), 1u);
}

class GradReducerRanks : public testing::TestWithParam<int> {};

TEST_P(GradReducerRanks, ReducesToTheSumOfEveryRanksBuffer) {
  for (size_t bucket_bytes : grad_checks::kBucketBytes)
    run_ranks(GetParam(), [&](Communicator& c) { grad_checks::check_reduces_to_sum(c, bucket_bytes); });
}

INSTANTIATE_TEST_SUITE_P(W, GradReducerRanks, testing::Values(1, 2, 3));

TEST(GradReducer, SumIsInRankOrderUnderThreadRanks) {
  // Bit-exact against a float sum in rank order: the thread communicator's
  // fixed order, so the result cannot depend on which rank finished first.
  const ParamTable t = grad_checks::test_table();
  run_ranks(3, [&](Communicator& c) {
    FlatBuffer grads(t);
    for (int64_t j = 0; j < grads.numel(); ++j)
      grads.data()[j] = conformance::rough_value(c.rank(), static_cast<size_t>(j));
    GradReducer red(t, grads, c, 4096);
    red.finish();
    size_t bad = 0;
    for (int64_t j = 0; j < grads.numel(); ++j) {
      float want = 0;
      for (int r = 0; r < 3; ++r) want += conformance::rough_value(r, static_cast<size_t>(j));
      bad += grads.data()[j] != want;
    }
    EXPECT_EQ(bad, 0u);
  });
}

TEST(GradReducer, RejectsMisuse) {
  const ParamTable t = grad_checks::test_table();
  FlatBuffer grads(t);
  auto self = make_self_communicator();
  GradReducer red(t, grads, *self);
  EXPECT_THROW(red.mark_ready(-1), Error);
  EXPECT_THROW(red.mark_ready(static_cast<int>(t.size())), Error);
  red.mark_ready(3);
  try {
    red.mark_ready(3);
    FAIL() << "no exception";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.layers.0.input_layernorm.weight was marked ready twice"),
              std::string::npos)
        << e.what();
  }
  red.finish();
  red.mark_ready(3);  // a new step
  red.finish();
  ParamTable other;
  other.add("x", {3});
  EXPECT_THROW(GradReducer(other, grads, *self), Error);
  EXPECT_THROW(GradReducer(t, grads, *self, 0), Error);
}

TEST(GradReducer, EmptyTable) {
  ParamTable t;
  FlatBuffer grads(t);
  auto self = make_self_communicator();
  GradReducer red(t, grads, *self);
  EXPECT_TRUE(red.buckets().empty());
  red.finish();
}
