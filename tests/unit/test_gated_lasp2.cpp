// Gated LASP-2 in the layer core (variant gla, parallel/gated_lasp2.h): W SP
// ranks (threads of one process, tests/unit/sp_test_group.h), each holding one
// contiguous chunk, reproduce the single-rank core on the whole sequence
// (outputs, dqkv, dg, dlog_gate) for gates near 0, near 1 and mixed, with and
// without the whole sequence's boundary states; each step moves exactly one
// AllGather of B*H*(d*d + d) floats forward and one of B*H*d*d backward,
// whatever T.
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

// H = 4 heads of d = 8 over KVH = 2 kv heads (GQA).
LinearAttentionSpec gla_spec(int block) {
  ModelConfig m;
  m.hidden_size = 32;
  m.num_attention_heads = 4;
  m.num_key_value_heads = 2;
  m.num_hidden_layers = 1;
  m.linear_attention.variant = "gla";
  m.linear_attention.block_size = block;
  return make_linear_attention_spec(m, 0);
}

enum class Gates { mixed, near_one, near_zero };

struct Inputs {
  int B, T, W, Hd;  // W = qkv width here
  std::vector<float> qkv, g, lg, dout, S0, dSend;
  Inputs(const LinearAttentionSpec& sp, int B_, int T_, Gates gates, uint64_t seed) : B(B_), T(T_) {
    W = (sp.H + 2 * sp.KVH) * sp.d;
    Hd = sp.H * sp.d;
    Rng rng(seed);
    const size_t N = static_cast<size_t>(B) * T, states = static_cast<size_t>(B) * sp.H * sp.d * sp.d;
    for (auto* x : {&qkv, &g, &dout, &S0, &dSend}) {
      x->resize(x == &qkv ? N * W : x == &S0 || x == &dSend ? states : N * Hd);
      for (auto& e : *x) e = static_cast<float>(rng.normal());
    }
    lg.resize(N * Hd);
    for (auto& e : lg) {
      const double u = rng.uniform();
      e = static_cast<float>(gates == Gates::mixed ? -3.0 * u : gates == Gates::near_one ? -1e-3 * u : -15.0 - 10.0 * u);
    }
  }
};

struct Result {
  std::vector<float> out, dqkv, dg, dlg, Send, dS0;
  std::vector<CommStats> fwd, bwd;
};

Result single_rank(const LinearAttentionSpec& sp, const Inputs& in, bool states) {
  LinearAttentionCore core(cpu_context(), sp, in.B, in.T);
  Result r;
  r.out.resize(in.dout.size());
  r.dqkv.resize(in.qkv.size());
  r.dg.resize(in.g.size());
  r.dlg.resize(in.lg.size());
  r.Send.resize(in.S0.size());
  r.dS0.resize(in.S0.size());
  core.forward(r.out.data(), in.qkv.data(), in.g.data(), states ? in.S0.data() : nullptr,
               states ? r.Send.data() : nullptr, in.lg.data());
  core.backward(r.dqkv.data(), r.dg.data(), in.dout.data(), states ? in.dSend.data() : nullptr,
                states ? r.dS0.data() : nullptr, r.dlg.data());
  return r;
}

// W ranks, rank j running a core on chunk j of T / W tokens; with states,
// every rank is given the sequence's S0 and dL/dS_end and returns S_end, dS0
// (rank 0's are kept; the others must equal them bit for bit).
Result sp_ranks(const LinearAttentionSpec& sp, const Inputs& in, int W, bool states) {
  const int B = in.B, T = in.T, C = T / W;
  Result r;
  r.out.resize(in.dout.size());
  r.dqkv.resize(in.qkv.size());
  r.dg.resize(in.g.size());
  r.dlg.resize(in.lg.size());
  r.fwd.resize(W);
  r.bwd.resize(W);
  std::vector<std::vector<float>> Send(W, std::vector<float>(in.S0.size())), dS0(W, std::vector<float>(in.S0.size()));
  SpTestGroup::run(W, [&](Communicator& comm, int j) {
    LinearAttentionCore core(cpu_context(), sp, B, C, &comm);
    EXPECT_EQ(core.sp_size(), W);
    const std::vector<float> qkv = chunk_of(in.qkv, B, T, W, j, in.W), g = chunk_of(in.g, B, T, W, j, in.Hd),
                             lg = chunk_of(in.lg, B, T, W, j, in.Hd), dout = chunk_of(in.dout, B, T, W, j, in.Hd);
    std::vector<float> out(dout.size()), dqkv(qkv.size()), dg(g.size()), dlg(lg.size());
    comm.reset_stats();
    core.forward(out.data(), qkv.data(), g.data(), states ? in.S0.data() : nullptr, states ? Send[j].data() : nullptr,
                 lg.data());
    r.fwd[j] = comm.stats();
    comm.reset_stats();
    core.backward(dqkv.data(), dg.data(), dout.data(), states ? in.dSend.data() : nullptr,
                  states ? dS0[j].data() : nullptr, dlg.data());
    r.bwd[j] = comm.stats();
    put_chunk(r.out, out, B, T, W, j, in.Hd);  // disjoint row ranges: no race
    put_chunk(r.dqkv, dqkv, B, T, W, j, in.W);
    put_chunk(r.dg, dg, B, T, W, j, in.Hd);
    put_chunk(r.dlg, dlg, B, T, W, j, in.Hd);
  });
  r.Send = Send[0];
  r.dS0 = dS0[0];
  for (int j = 1; j < W; ++j) {
    EXPECT_EQ(Send[j], Send[0]) << "rank " << j << " composed another final state";
    EXPECT_EQ(dS0[j], dS0[0]) << "rank " << j << " composed another initial-state gradient";
  }
  return r;
}

double rel_err(const std::vector<float>& got, const std::vector<float>& want) {
  return norm_err(got.data(), Vec(want.begin(), want.end()));
}

// dlog_gate's error against the scale of its terms (|q dq|, here bounded by
// the largest |dqkv|): with gates near 0 the exact value is ~1e-8 of them
// (see test_gla.cpp's gate_err).
double gate_rel_err(const Result& got, const Result& ref) {
  double err = 0.0, mag = 0.0;
  for (size_t i = 0; i < ref.dlg.size(); ++i) {
    err = std::max(err, std::abs(static_cast<double>(got.dlg[i]) - ref.dlg[i]));
    mag = std::max(mag, std::abs(static_cast<double>(ref.dlg[i])));
  }
  for (float x : ref.dqkv) mag = std::max(mag, std::abs(static_cast<double>(x)));
  return err / mag;
}

}  // namespace

TEST(GatedLasp2Core, ChunksOnWRanksEqualTheSingleRankCore) {
  // W ranks and one rank compute the same sums in another association: the
  // blocks fall elsewhere (C = 24/W is never a multiple of the block of 5),
  // and the state entering a chunk is a fold of chunk maps in double instead
  // of a running fp32 state. As for the fixed decays (test_lasp2_linear.cpp),
  // 1e-5 of the largest magnitude covers fp32 reassociation through the
  // output norm; a lost map, a wrong diagonal or a missing suffix term gives
  // errors of order 1e-2. dlog_gate: 1e-4 of its terms' scale.
  const double tol = 1e-5, tol_gate = 1e-4;
  const LinearAttentionSpec sp = gla_spec(5);
  const int B = 2, T = 24;
  uint64_t seed = 700;
  const char* names[] = {"mixed gates", "gates near 1", "gates near 0"};
  for (int gi = 0; gi < 3; ++gi)
    for (const bool states : {false, true}) {
      const Inputs in(sp, B, T, static_cast<Gates>(gi), ++seed);
      const Result ref = single_rank(sp, in, states);
      for (int W : {1, 2, 3, 4}) {
        SCOPED_TRACE(testing::Message() << names[gi] << (states ? ", boundary states" : ", from zero") << " W=" << W);
        const Result got = sp_ranks(sp, in, W, states);
        EXPECT_LT(rel_err(got.out, ref.out), tol);
        EXPECT_LT(rel_err(got.dqkv, ref.dqkv), tol);
        EXPECT_LT(rel_err(got.dg, ref.dg), tol);
        EXPECT_LT(gate_rel_err(got, ref), tol_gate);
        if (states) {
          EXPECT_LT(rel_err(got.Send, ref.Send), tol);
          EXPECT_LT(rel_err(got.dS0, ref.dS0), tol);
        }
        if (W == 1) {  // a group of one is the single-rank core, bit for bit
          EXPECT_EQ(got.out, ref.out);
          EXPECT_EQ(got.dqkv, ref.dqkv);
          EXPECT_EQ(got.dlg, ref.dlg);
        }
      }
    }
}

TEST(GatedLasp2Core, OneMapGatherEachWayIndependentOfT) {
  // Forward: one AllGather of [M_j | ld_j], B*H*(d*d + d) fp32 per rank;
  // backward: one of dP_j, B*H*d*d; nothing else, for T = 64 and 256 alike.
  const LinearAttentionSpec sp = gla_spec(64);
  const int B = 2;
  const uint64_t fwd_bytes = static_cast<uint64_t>(B) * sp.H * (sp.d * sp.d + sp.d) * sizeof(float);
  const uint64_t bwd_bytes = static_cast<uint64_t>(B) * sp.H * sp.d * sp.d * sizeof(float);
  EXPECT_EQ(fwd_bytes, 2304u);
  EXPECT_EQ(bwd_bytes, 2048u);
  for (int W : {2, 4})
    for (int T : {64, 256})
      for (const bool states : {false, true}) {
        SCOPED_TRACE(testing::Message() << "W=" << W << " T=" << T << (states ? " with states" : ""));
        const Result r = sp_ranks(sp, Inputs(sp, B, T, Gates::mixed, 9), W, states);
        for (int j = 0; j < W; ++j) {
          EXPECT_EQ(r.fwd[j].all_gather_calls, 1u);
          EXPECT_EQ(r.fwd[j].all_gather_bytes, fwd_bytes);
          EXPECT_EQ(r.bwd[j].all_gather_calls, 1u);
          EXPECT_EQ(r.bwd[j].all_gather_bytes, bwd_bytes);
          for (const CommStats& s : {r.fwd[j], r.bwd[j]})
            EXPECT_EQ(s.all_reduce_calls + s.reduce_scatter_calls + s.broadcast_calls, 0u);
        }
      }
}

TEST(GatedLasp2Core, NothingLeaksFromTheFuture) {
  // Perturb the log gate of one token of rank 2 (of 4): every output before
  // it stays bit-identical, and the outputs after it change (the gate acts
  // through the prefix fold on rank 3).
  const LinearAttentionSpec sp = gla_spec(4);
  const int B = 2, T = 24, W = 4, C = T / W, Hd = sp.H * sp.d;
  const int tp = 2 * C + 2;
  Inputs in(sp, B, T, Gates::mixed, 13);
  const Result base = sp_ranks(sp, in, W, false);
  Inputs pin = in;
  for (int b = 0; b < B; ++b)
    for (int j = 0; j < Hd; ++j) pin.lg[(static_cast<size_t>(b) * T + tp) * Hd + j] -= 0.5f;
  const Result pert = sp_ranks(sp, pin, W, false);
  for (int b = 0; b < B; ++b) {
    const size_t row = static_cast<size_t>(b) * T;
    EXPECT_EQ(std::memcmp(pert.out.data() + row * Hd, base.out.data() + row * Hd, sizeof(float) * tp * Hd), 0);
    EXPECT_NE(std::memcmp(pert.out.data() + (row + 3 * C) * Hd, base.out.data() + (row + 3 * C) * Hd,
                          sizeof(float) * C * Hd),
              0);
  }
}

TEST(GatedLasp2Core, NeedsItsLogGates) {
  const LinearAttentionSpec sp = gla_spec(4);
  LinearAttentionCore core(cpu_context(), sp, 1, 4);
  std::vector<float> qkv(static_cast<size_t>(4) * core.qkv_width(), 0.1f), g(4 * sp.H * sp.d), out(g.size());
  try {
    core.forward(out.data(), qkv.data(), g.data(), nullptr, nullptr, nullptr);
    ADD_FAILURE() << "a gla core ran without log gates";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("log forget gates"), std::string::npos) << e.what();
  }
}
