// Checks of GradReducer shared by the thread-rank unit tests and the mpirun
// tests: a small parameter table with fused, tiny and oversized tensors, each
// rank's gradients generated from (rank, index) so every rank can compute the
// float64 sum of all ranks' buffers as the reference.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <thread>
#include <vector>

#include "comm_conformance.h"
#include "parallel/grad_reducer.h"

namespace lintrain::grad_checks {

inline ParamTable test_table() {
  ParamTable t;
  t.add("model.embed_tokens.weight", {50, 16});               // 800
  t.add("model.layers.0.self_attn.q_proj.weight", {16, 16});  // 256
  t.add("model.layers.0.self_attn.k_proj.weight", {8, 16}, /*fuse_with_previous=*/true);
  t.add("model.layers.0.input_layernorm.weight", {16});
  t.add("model.layers.0.mlp.big.weight", {300, 100});  // 30000: larger than the middle bucket sizes
  t.add("model.layers.1.odd.weight", {7, 13});         // 91, padded to 96
  t.add("model.layers.1.tiny", {1});
  t.add("model.norm.weight", {16});
  t.add("lm_head.weight", {50, 16});
  return t;
}

// 1 B: every tensor alone; 4 KiB, 64 KiB: several tensors a bucket, the big
// one alone; the 25 MiB default: one bucket.
inline const size_t kBucketBytes[] = {1, 4096, 65536, GradReducer::kDefaultBucketBytes};

// Runs three steps of GradReducer on `c`: each rank marks its tensors in its
// own random order; step 0 also waits for every bucket to be reduced BEFORE
// calling finish() (the communication thread progresses on its own); steps 1
// and 2 repeat the same inputs and must give the same bits.
inline void check_reduces_to_sum(Communicator& c, size_t bucket_bytes) {
  const int W = c.size(), me = c.rank();
  const ParamTable table = test_table();
  const size_t N = static_cast<size_t>(table.buffer_numel());
  FlatBuffer grads(table);
  GradReducer reducer(table, grads, c, bucket_bytes);
  std::vector<float> first(N);
  std::mt19937 rng(1000u + static_cast<unsigned>(me));
  for (int step = 0; step < 3; ++step) {
    // Padding too: the buckets tile the buffer, so it is summed like the rest.
    for (size_t j = 0; j < N; ++j) grads.data()[j] = conformance::rough_value(me, j);
    std::vector<int> order(table.size());
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    const size_t marked = step == 2 ? order.size() / 2 : order.size();  // step 2: finish() marks the rest
    for (size_t i = 0; i < marked; ++i) reducer.mark_ready(order[i]);
    if (step == 0) {
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
      while (reducer.reduced_buckets() < reducer.buckets().size() && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      EXPECT_EQ(reducer.reduced_buckets(), reducer.buckets().size()) << "buckets did not progress before finish()";
    }
    reducer.finish();
    EXPECT_EQ(reducer.reduced_buckets(), 0u);  // ready for the next step
    if (step == 0) {
      std::memcpy(first.data(), grads.data(), N * sizeof(float));
      size_t bad = 0;
      for (size_t j = 0; j < N; ++j) {
        double sum = 0, sum_abs = 0;
        for (int r = 0; r < W; ++r) {
          sum += conformance::rough_value(r, j);
          sum_abs += std::fabs(conformance::rough_value(r, j));
        }
        // A float sum of W terms in any order is within (W - 1) roundings of
        // 2^-24 relative to sum |x_r| of the exact sum; W of them covers the
        // second-order terms.
        const double tol = W * std::ldexp(sum_abs, -24);
        bad += !(std::fabs(grads.data()[j] - sum) <= tol);
      }
      EXPECT_EQ(bad, 0u) << "rank " << me << " bucket_bytes " << bucket_bytes;
    } else {
      EXPECT_EQ(0, std::memcmp(first.data(), grads.data(), N * sizeof(float)))
          << "step " << step << " differs from step 0 (rank " << me << ")";
    }
  }
  // Every rank holds the same bits.
  std::vector<float> all(static_cast<size_t>(W) * N);
  c.all_gather(grads.data(), all.data(), N);
  for (int r = 0; r < W; ++r)
    EXPECT_EQ(0, std::memcmp(all.data() + static_cast<size_t>(r) * N, grads.data(), N * sizeof(float)))
        << "rank " << r << " holds different gradients than rank " << me;
}

}  // namespace lintrain::grad_checks
