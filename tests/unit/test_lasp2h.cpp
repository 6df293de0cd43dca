// LASP-2H in the softmax-attention layer core: W SP ranks (threads of one
// process, tests/unit/sp_test_group.h) each holding one contiguous chunk
// reproduce the single-rank core on the whole sequence, with RoPE at global
// positions, outputs and dqkv; the communication is one AllGather of the
// chunk's k|v forward and one reduce-scatter of dk|dv backward, growing with T.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "layers/softmax_attention.h"
#include "runtime/error.h"
#include "tests/unit/cpu_context.h"
#include "tests/unit/linear_attention_ref.h"
#include "tests/unit/sp_chunks.h"
#include "tests/unit/sp_test_group.h"

using namespace lintrain;
using namespace lintrain::test;

namespace {

ModelConfig config(int kv_heads) {
  ModelConfig cfg;
  cfg.hidden_size = 32;
  cfg.num_attention_heads = 4;
  cfg.num_key_value_heads = kv_heads;  // d = 8
  cfg.rope_theta = 10000.0;
  return cfg;
}

struct Result {
  std::vector<float> out, dqkv;
  std::vector<CommStats> fwd, bwd;
};

struct Inputs {
  int B, T, W, Hd;  // W = qkv width here
  std::vector<float> qkv, dout;
  Inputs(const ModelConfig& cfg, int B_, int T_, uint64_t seed) : B(B_), T(T_) {
    Hd = cfg.hidden_size;
    W = Hd + 2 * cfg.kv_heads() * cfg.head_dim();
    Rng rng(seed);
    qkv.resize(static_cast<size_t>(B) * T * W);
    dout.resize(static_cast<size_t>(B) * T * Hd);
    for (auto& e : qkv) e = static_cast<float>(rng.normal());
    for (auto& e : dout) e = static_cast<float>(rng.normal());
  }
};

Result single_rank(const ModelConfig& cfg, const Inputs& in, int pos_offset) {
  SoftmaxAttentionCore core(cpu_context(), cfg, in.B, in.T);
  Result r;
  r.out.resize(in.dout.size());
  r.dqkv.resize(in.qkv.size());
  core.forward(r.out.data(), in.qkv.data(), pos_offset);
  core.backward(r.dqkv.data(), in.dout.data());
  return r;
}

Result sp_ranks(const ModelConfig& cfg, const Inputs& in, int W, int pos_offset) {
  const int B = in.B, T = in.T, C = T / W;
  Result r;
  r.out.resize(in.dout.size());
  r.dqkv.resize(in.qkv.size());
  r.fwd.resize(W);
  r.bwd.resize(W);
  SpTestGroup::run(W, [&](Communicator& comm, int j) {
    SoftmaxAttentionCore core(cpu_context(), cfg, B, C, &comm);
    EXPECT_EQ(core.sp_size(), W);
    EXPECT_EQ(core.sp_rank(), j);
    const std::vector<float> qkv = chunk_of(in.qkv, B, T, W, j, in.W), dout = chunk_of(in.dout, B, T, W, j, in.Hd);
    std::vector<float> out(dout.size()), dqkv(qkv.size(), std::nanf(""));  // must be assigned in full
    comm.reset_stats();
    core.forward(out.data(), qkv.data(), pos_offset);
    r.fwd[j] = comm.stats();
    comm.reset_stats();
    core.backward(dqkv.data(), dout.data());
    r.bwd[j] = comm.stats();
    put_chunk(r.out, out, B, T, W, j, in.Hd);
    put_chunk(r.dqkv, dqkv, B, T, W, j, in.W);
  });
  return r;
}

double rel_err(const std::vector<float>& got, const std::vector<float>& want) {
  return norm_err(got.data(), Vec(want.begin(), want.end()));
}

bool same_bits(const float* a, const float* b, size_t n) { return std::memcmp(a, b, n * sizeof(float)) == 0; }

}  // namespace

TEST(Lasp2hSoftmaxCore, ChunksOnWRanksEqualTheSingleRankCore) {
  // Each rank scores its queries against the same keys at the same RoPE
  // positions as the single rank, so outputs and dq differ only by the
  // kernel's tiling (fp32 rounding, ~1e-7 relative); dk, dv of a key are a
  // sum over the ranks whose queries see it, added in rank order by the
  // reduce-scatter instead of in one loop: again reassociation only, each
  // entry a sum of <= T*d = 192 O(1) fp32 products (~1e-6 of the scale).
  // 1e-5 of the largest magnitude leaves margin; a wrong RoPE position, a
  // missing chunk of keys or a gradient sent to the wrong owner is O(1).
  // Measured max: 2.4e-7.
  const double tol = 1e-5;
  const int B = 2, T = 24;
  for (int kv_heads : {2, 4})  // GQA groups of 2, and plain multi-head
    for (int pos_offset : {0, 7}) {
      const ModelConfig cfg = config(kv_heads);
      const Inputs in(cfg, B, T, 30 + kv_heads + pos_offset);
      const Result ref = single_rank(cfg, in, pos_offset);
      for (int W : {1, 2, 3, 4}) {
        SCOPED_TRACE(testing::Message() << "KVH=" << kv_heads << " pos_offset=" << pos_offset << " W=" << W);
        const Result got = sp_ranks(cfg, in, W, pos_offset);
        EXPECT_LT(rel_err(got.out, ref.out), tol);
        EXPECT_LT(rel_err(got.dqkv, ref.dqkv), tol);
        for (float x : got.dqkv) ASSERT_TRUE(std::isfinite(x));
        if (W == 1) {  // a group of one is the single-rank core, bit for bit
          EXPECT_TRUE(same_bits(got.out.data(), ref.out.data(), ref.out.size()));
          EXPECT_TRUE(same_bits(got.dqkv.data(), ref.dqkv.data(), ref.dqkv.size()));
        }
      }
    }
}

TEST(Lasp2hSoftmaxCore, CommunicationGrowsWithT) {
  // Per layer per step and rank, C = T / W:
  //   forward:  one AllGather of the rotated k|v rows, 2*B*C*KVH*d*4 bytes sent;
  //   backward: one reduce-scatter of dk|dv for all W chunks, W times that
  //             (the send-buffer size; each rank receives 2*B*C*KVH*d floats).
  const ModelConfig cfg = config(2);
  const int B = 2, KVH = 2, d = 8;
  for (int W : {2, 4}) {
    uint64_t fwd_bytes_at_64 = 0;
    for (int T : {64, 256}) {
      SCOPED_TRACE(testing::Message() << "W=" << W << " T=" << T);
      const int C = T / W;
      const uint64_t kv_bytes = 2ull * B * C * KVH * d * sizeof(float);
      const Result r = sp_ranks(cfg, Inputs(cfg, B, T, 3), W, 0);
      for (int j = 0; j < W; ++j) {
        EXPECT_EQ(r.fwd[j].all_gather_calls, 1u);
        EXPECT_EQ(r.fwd[j].all_gather_bytes, kv_bytes);
        EXPECT_EQ(r.fwd[j].reduce_scatter_calls + r.fwd[j].all_reduce_calls, 0u);
        EXPECT_EQ(r.bwd[j].reduce_scatter_calls, 1u);
        EXPECT_EQ(r.bwd[j].reduce_scatter_bytes, W * kv_bytes);
        EXPECT_EQ(r.bwd[j].all_gather_calls + r.bwd[j].all_reduce_calls, 0u);
      }
      if (T == 64) {
        fwd_bytes_at_64 = r.fwd[0].all_gather_bytes;
      } else {
        EXPECT_EQ(r.fwd[0].all_gather_bytes, 4 * fwd_bytes_at_64);  // 4x the tokens, 4x the bytes
      }
    }
  }
}

TEST(Lasp2hSoftmaxCore, NothingLeaksFromTheFuture) {
  // Perturb a token of rank 2 (of 4): ranks 0 and 1 and rank 2's earlier
  // tokens give bit-identical outputs; perturbing that token's dout leaves
  // the gradients of all later tokens (rank 3 included) bit-identical.
  const ModelConfig cfg = config(2);
  const int B = 2, T = 24, W = 4, C = T / W, tp = 2 * C + 3;
  const Inputs in(cfg, B, T, 17);
  const Result base = sp_ranks(cfg, in, W, 0);
  Inputs pin = in, din = in;
  for (int b = 0; b < B; ++b) {
    for (int j = 0; j < in.W; ++j) pin.qkv[(static_cast<size_t>(b) * T + tp) * in.W + j] += 0.5f;
    for (int j = 0; j < in.Hd; ++j) din.dout[(static_cast<size_t>(b) * T + tp) * in.Hd + j] += 0.5f;
  }
  const Result pert = sp_ranks(cfg, pin, W, 0), dpert = sp_ranks(cfg, din, W, 0);
  for (int b = 0; b < B; ++b) {
    const size_t row = static_cast<size_t>(b) * T;
    EXPECT_TRUE(same_bits(pert.out.data() + row * in.Hd, base.out.data() + row * in.Hd, tp * in.Hd));
    EXPECT_FALSE(same_bits(pert.out.data() + (row + 3 * C) * in.Hd, base.out.data() + (row + 3 * C) * in.Hd,
                           C * in.Hd));
    const size_t after = row + tp + 1;
    EXPECT_TRUE(same_bits(dpert.dqkv.data() + after * in.W, base.dqkv.data() + after * in.W,
                          static_cast<size_t>(T - tp - 1) * in.W));
    EXPECT_FALSE(same_bits(dpert.dqkv.data() + row * in.W, base.dqkv.data() + row * in.W, C * in.W));
  }
}

TEST(Lasp2hSoftmaxCore, RepeatedStepsAndMemoryReport) {
  // Two steps on the same core give the same results (buffers are reused, not
  // stale); rank j saves the gathered k|v of chunks 0..j.
  const ModelConfig cfg = config(2);
  const int B = 1, T = 12, W = 3, C = T / W, kvw = 2 * 2 * 8;
  const Inputs in(cfg, B, T, 5);
  SpTestGroup::run(W, [&](Communicator& comm, int j) {
    SoftmaxAttentionCore core(cpu_context(), cfg, B, C, &comm);
    SoftmaxAttentionCore alone(cpu_context(), cfg, B, C);
    EXPECT_EQ(core.saved_bytes() - alone.saved_bytes(), sizeof(float) * B * (j + 1) * C * kvw);
    EXPECT_EQ(alone.workspace_bytes(), 0u);
    const std::vector<float> qkv = chunk_of(in.qkv, B, T, W, j, in.W), dout = chunk_of(in.dout, B, T, W, j, in.Hd);
    std::vector<std::vector<float>> outs;
    for (int step = 0; step < 2; ++step) {
      std::vector<float> out(dout.size()), dqkv(qkv.size());
      core.forward(out.data(), qkv.data(), 0);
      core.backward(dqkv.data(), dout.data());
      out.insert(out.end(), dqkv.begin(), dqkv.end());
      outs.push_back(out);
    }
    EXPECT_TRUE(same_bits(outs[0].data(), outs[1].data(), outs[0].size()));
  });
}
