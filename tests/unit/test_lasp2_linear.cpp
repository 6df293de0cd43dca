// LASP-2 in the linear-attention layer core: W SP ranks (threads of one
// process, tests/unit/sp_test_group.h), each holding one contiguous chunk,
// reproduce the single-rank core on the whole sequence (outputs and the
// gradients dqkv, dg) for every variant and decay regime; exactly one AllGather
// of B*H*d*d floats each way whatever T; and the pitfalls of docs/lasp2.md.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "layers/linear_attention.h"
#include "runtime/error.h"
#include "tests/unit/cpu_context.h"
#include "tests/unit/linear_attention_ref.h"
#include "tests/unit/sp_chunks.h"
#include "tests/unit/sp_test_group.h"

using namespace lintrain;
using namespace lintrain::test;

namespace {

// H = 4 heads of d = 8 over KVH = 2 kv heads (GQA), 4 layers.
ModelConfig model(const std::string& variant, const std::string& decay, int block) {
  ModelConfig m;
  m.hidden_size = 32;
  m.num_attention_heads = 4;
  m.num_key_value_heads = 2;
  m.num_hidden_layers = 4;
  m.linear_attention.variant = variant;
  m.linear_attention.decay = decay;
  m.linear_attention.block_size = block;
  return m;
}

struct Inputs {
  int B, T, W, Hd;  // W = qkv width here
  std::vector<float> qkv, g, dout;
  Inputs(const LinearAttentionSpec& sp, int B_, int T_, uint64_t seed) : B(B_), T(T_) {
    W = (sp.H + 2 * sp.KVH) * sp.d;
    Hd = sp.H * sp.d;
    Rng rng(seed);
    const size_t N = static_cast<size_t>(B) * T;
    for (auto* x : {&qkv, &g, &dout}) {
      x->resize(N * (x == &qkv ? W : Hd));
      for (auto& e : *x) e = static_cast<float>(rng.normal());
    }
  }
};

// Outputs and gradients in the global (B, T, ...) layout, and each rank's
// collective counters for its forward and its backward.
struct Result {
  std::vector<float> out, dqkv, dg;
  std::vector<CommStats> fwd, bwd;
};

Result single_rank(const LinearAttentionSpec& sp, const Inputs& in) {
  LinearAttentionCore core(cpu_context(), sp, in.B, in.T);
  Result r;
  r.out.resize(in.dout.size());
  r.dqkv.resize(in.qkv.size());
  r.dg.resize(in.g.size());
  core.forward(r.out.data(), in.qkv.data(), in.g.data(), nullptr, nullptr);
  core.backward(r.dqkv.data(), r.dg.data(), in.dout.data(), nullptr, nullptr);
  return r;
}

// W ranks, rank j running a core on chunk j of T / W tokens.
Result sp_ranks(const LinearAttentionSpec& sp, const Inputs& in, int W) {
  const int B = in.B, T = in.T, C = T / W;
  Result r;
  r.out.resize(in.dout.size());
  r.dqkv.resize(in.qkv.size());
  r.dg.resize(in.g.size());
  r.fwd.resize(W);
  r.bwd.resize(W);
  SpTestGroup::run(W, [&](Communicator& comm, int j) {
    LinearAttentionCore core(cpu_context(), sp, B, C, &comm);
    EXPECT_EQ(core.sp_size(), W);
    EXPECT_EQ(core.sp_rank(), j);
    const std::vector<float> qkv = chunk_of(in.qkv, B, T, W, j, in.W), g = chunk_of(in.g, B, T, W, j, in.Hd),
                             dout = chunk_of(in.dout, B, T, W, j, in.Hd);
    std::vector<float> out(dout.size()), dqkv(qkv.size()), dg(g.size());
    comm.reset_stats();
    core.forward(out.data(), qkv.data(), g.data(), nullptr, nullptr);
    r.fwd[j] = comm.stats();
    comm.reset_stats();
    core.backward(dqkv.data(), dg.data(), dout.data(), nullptr, nullptr);
    r.bwd[j] = comm.stats();
    // Chunks are disjoint row ranges of the global buffers: no race.
    put_chunk(r.out, out, B, T, W, j, in.Hd);
    put_chunk(r.dqkv, dqkv, B, T, W, j, in.W);
    put_chunk(r.dg, dg, B, T, W, j, in.Hd);
  });
  return r;
}

double rel_err(const std::vector<float>& got, const std::vector<float>& want) {
  return norm_err(got.data(), Vec(want.begin(), want.end()));
}

bool same_bits(const float* a, const float* b, size_t n) { return std::memcmp(a, b, n * sizeof(float)) == 0; }

}  // namespace

TEST(Lasp2LinearCore, ChunksOnWRanksEqualTheSingleRankCore) {
  // W ranks and one rank compute the same sums in different association:
  // block boundaries fall elsewhere (C = 24/W is never a multiple of the block
  // of 5, so every chunk has a tail block), and the state entering a chunk is
  // a decayed sum of chunk states (in double) instead of a running fp32 state.
  // Each output/gradient sums <= T*d = 192 fp32 products (~sqrt(192) * 6e-8 ~
  // 1e-6 of the output scale), and the per-head output norm can amplify a
  // small head's error by its 1/rms. 1e-5 of the largest magnitude (norm_err)
  // covers that with margin; losing a chunk's state, an intra term, or one
  // power of lambda gives errors of order 1e-2 or more. Measured max: 3e-7.
  const double tol = 1e-5;
  const int B = 2, T = 24;
  uint64_t seed = 500;
  for (const char* variant : {"basic", "lightning", "retnet"})
    // "" = the variant's own decay; then none, strong, near 1, near 0 (1e-20:
    // lambda^n underflows fp32 from n = 3, so only the last token or two of
    // the previous chunk reach across the boundary).
    for (const char* decay : {"", "none", "0.5", "0.9999", "1e-20"}) {
      const LinearAttentionSpec sp = make_linear_attention_spec(model(variant, decay, 5), 1);
      const Inputs in(sp, B, T, ++seed);
      const Result ref = single_rank(sp, in);
      for (int W : {1, 2, 3, 4}) {
        SCOPED_TRACE(testing::Message() << variant << " decay '" << decay << "' W=" << W);
        const Result got = sp_ranks(sp, in, W);
        EXPECT_LT(rel_err(got.out, ref.out), tol);
        EXPECT_LT(rel_err(got.dqkv, ref.dqkv), tol);
        if (sp.output_gate) {
          EXPECT_LT(rel_err(got.dg, ref.dg), tol);
        }
        if (W == 1) {  // a group of one is the single-rank core, bit for bit
          EXPECT_TRUE(same_bits(got.out.data(), ref.out.data(), ref.out.size()));
          EXPECT_TRUE(same_bits(got.dqkv.data(), ref.dqkv.data(), ref.dqkv.size()));
        }
        for (const auto& s : got.fwd) EXPECT_EQ(s.all_gather_calls, W > 1 ? 1u : 0u);
      }
    }
}

TEST(Lasp2LinearCore, OneStateGatherEachWayIndependentOfT) {
  // Per layer per step: forward one AllGather of B*H*d*d fp32 (M_j), backward
  // one of B*H*d*d (dP_j), nothing else, for T = 64 and T = 256 alike.
  const LinearAttentionSpec sp = make_linear_attention_spec(model("lightning", "", 64), 2);
  const int B = 2;
  const uint64_t state_bytes = static_cast<uint64_t>(B) * sp.H * sp.d * sp.d * sizeof(float);
  EXPECT_EQ(state_bytes, 2048u);
  for (int W : {2, 4})
    for (int T : {64, 256}) {
      SCOPED_TRACE(testing::Message() << "W=" << W << " T=" << T);
      const Result r = sp_ranks(sp, Inputs(sp, B, T, 7), W);
      for (int j = 0; j < W; ++j)
        for (const CommStats& s : {r.fwd[j], r.bwd[j]}) {
          EXPECT_EQ(s.all_gather_calls, 1u);
          EXPECT_EQ(s.all_gather_bytes, state_bytes);
          EXPECT_EQ(s.all_reduce_calls + s.reduce_scatter_calls + s.broadcast_calls, 0u);
        }
    }
}

TEST(Lasp2LinearCore, FirstChunkAndTailTokensAreComputed) {
  // Pitfalls: a missing intra-chunk term makes chunk 0's outputs zero; a
  // dropped tail block (C = 6, block 4: rows 4, 5 of every chunk) leaves
  // zeros or stale values. Every row of every rank must be non-zero and equal
  // the single-rank row.
  const LinearAttentionSpec sp = make_linear_attention_spec(model("basic", "0.9", 4), 0);
  const int B = 2, T = 24, W = 4, C = T / W, Hd = sp.H * sp.d;
  const Inputs in(sp, B, T, 11);
  const Result ref = single_rank(sp, in), got = sp_ranks(sp, in, W);
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t) {
      SCOPED_TRACE(testing::Message() << "b=" << b << " t=" << t << " rank " << t / C);
      const size_t row = (static_cast<size_t>(b) * T + t) * Hd;
      double mag = 0.0, err = 0.0;
      for (int j = 0; j < Hd; ++j) {
        mag = std::max(mag, std::abs(static_cast<double>(got.out[row + j])));
        err = std::max(err, std::abs(static_cast<double>(got.out[row + j]) - ref.out[row + j]));
      }
      EXPECT_GT(mag, 0.1);  // output_norm makes every head's rms ~1
      EXPECT_LT(err, 1e-5 * mag);  // measured max 2e-7 of the row's magnitude
    }
}

TEST(Lasp2LinearCore, NothingLeaksFromTheFuture) {
  // Perturb one token of rank 2 (of 4): the outputs of ranks 0 and 1 and of
  // rank 2's earlier tokens stay bit-identical (exact causal masking, and the
  // prefix only holds earlier chunks). Backward is causal the other way:
  // perturbing dout of that token leaves the gradients of every later token
  // (the rest of rank 2 and all of rank 3) bit-identical.
  const LinearAttentionSpec sp = make_linear_attention_spec(model("lightning", "none", 4), 3);
  const int B = 2, T = 24, W = 4, C = T / W, Hd = sp.H * sp.d;
  const int tp = 2 * C + 2;  // the perturbed token (rank 2, row 2 of its chunk)
  Inputs in(sp, B, T, 13);
  const Result base = sp_ranks(sp, in, W);
  Inputs pin = in;
  for (int b = 0; b < B; ++b)
    for (int j = 0; j < pin.W; ++j) pin.qkv[(static_cast<size_t>(b) * T + tp) * pin.W + j] += 0.5f;
  const Result pert = sp_ranks(sp, pin, W);
  Inputs din = in;
  for (int b = 0; b < B; ++b)
    for (int j = 0; j < Hd; ++j) din.dout[(static_cast<size_t>(b) * T + tp) * Hd + j] += 0.5f;
  const Result dpert = sp_ranks(sp, din, W);
  for (int b = 0; b < B; ++b) {
    const size_t row = static_cast<size_t>(b) * T;
    // Forward: tokens before tp identical, tp and every later rank changed.
    EXPECT_TRUE(same_bits(pert.out.data() + row * Hd, base.out.data() + row * Hd, static_cast<size_t>(tp) * Hd));
    EXPECT_FALSE(same_bits(pert.out.data() + (row + tp) * Hd, base.out.data() + (row + tp) * Hd, Hd));
    EXPECT_FALSE(same_bits(pert.out.data() + (row + 3 * C) * Hd, base.out.data() + (row + 3 * C) * Hd, C * Hd));
    // Backward: tokens after tp identical, earlier ranks changed (through dP_2).
    const size_t after = row + tp + 1, n_after = static_cast<size_t>(T - tp - 1) * pin.W;
    EXPECT_TRUE(same_bits(dpert.dqkv.data() + after * pin.W, base.dqkv.data() + after * pin.W, n_after));
    EXPECT_FALSE(same_bits(dpert.dqkv.data() + row * pin.W, base.dqkv.data() + row * pin.W, C * pin.W));
  }
}

TEST(Lasp2LinearCore, BoundaryStatesAreRefusedUnderSp) {
  const LinearAttentionSpec sp = make_linear_attention_spec(model("basic", "", 4), 0);
  const int B = 1, C = 4;
  SpTestGroup::run(2, [&](Communicator& comm, int) {
    LinearAttentionCore core(cpu_context(), sp, B, C, &comm);
    std::vector<float> qkv(static_cast<size_t>(C) * core.qkv_width(), 0.1f), out(C * sp.H * sp.d);
    std::vector<float> S(static_cast<size_t>(sp.H) * sp.d * sp.d);
    EXPECT_THROW(core.forward(out.data(), qkv.data(), nullptr, S.data(), nullptr), Error);
    EXPECT_THROW(core.forward(out.data(), qkv.data(), nullptr, nullptr, S.data()), Error);
    EXPECT_EQ(comm.stats().all_gather_calls, 0u);  // refused before any collective
  });
}
