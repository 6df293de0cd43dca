// Gated linear attention (runtime/ops_gla.h, CPU bodies) against the float64
// recurrence and its back-propagation through time (tests/unit/gla_ref.h):
// forward, every gradient, the boundary states, gates near 0 and near 1,
// lengths that do not divide the block, GQA, strided rows; the gated LASP-2
// decomposition (chunk maps, folds, prefix and suffix terms) against the
// unsplit op; the forget gate against its formula and finite differences.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "runtime/error.h"
#include "runtime/ops_gla.h"
#include "tests/unit/cpu_context.h"
#include "tests/unit/gla_ref.h"

using namespace lintrain;
using namespace lintrain::test;

namespace {

constexpr float kSentinel = 12345.0f;

std::vector<float> to_strided(const Vec& x, int rows, int width, int ld, float pad) {
  std::vector<float> out(static_cast<size_t>(rows) * ld, pad);
  for (int r = 0; r < rows; ++r)
    for (int j = 0; j < width; ++j)
      out[static_cast<size_t>(r) * ld + j] = static_cast<float>(x[static_cast<size_t>(r) * width + j]);
  return out;
}

Vec from_strided(const std::vector<float>& x, int rows, int width, int ld) {
  Vec out(static_cast<size_t>(rows) * width);
  for (int r = 0; r < rows; ++r)
    for (int j = 0; j < width; ++j) out[static_cast<size_t>(r) * width + j] = x[static_cast<size_t>(r) * ld + j];
  return out;
}

bool padding_intact(const std::vector<float>& x, int rows, int width, int ld) {
  for (int r = 0; r < rows; ++r)
    for (int j = width; j < ld; ++j)
      if (x[static_cast<size_t>(r) * ld + j] != kSentinel) return false;
  return true;
}

enum class Gates { mixed, near_one, near_zero };

// Log gates: mixed = -U(0, 3) (a in (0.05, 1]); near_one = -U(0, 1e-3);
// near_zero = -U(15, 25) (a ~ 1e-7 .. 3e-11: the state forgets within a token).
Vec make_log_gates(Rng& rng, size_t n, Gates kind) {
  Vec g(n);
  for (auto& x : g) {
    const double u = rng.uniform();
    switch (kind) {
      case Gates::mixed: x = -3.0 * u; break;
      case Gates::near_one: x = -1e-3 * u; break;
      case Gates::near_zero: x = -15.0 - 10.0 * u; break;
    }
  }
  return round_f32(g);
}

struct Problem {
  RefShape s;
  LinearAttentionDims m;
  Vec q, k, v, lg, S0, dout, dSout;
  std::vector<float> qf, kf, vf, lgf, S0f, doutf, dSoutf;

  Problem(const RefShape& shape, int block, Gates gates, uint64_t seed) : s(shape) {
    const int N = s.B * s.T;
    m = LinearAttentionDims{s.B, s.T, s.H, s.KVH, s.d, block, s.H * s.d + 3, s.KVH * s.d + 1, s.KVH * s.d + 2,
                            s.H * s.d + 5};
    m.ldg = s.H * s.d + 4;
    Rng rng(seed);
    q = round_f32(randn(rng, static_cast<size_t>(N) * s.H * s.d, 0.5));
    k = round_f32(randn(rng, static_cast<size_t>(N) * s.KVH * s.d, 0.5));
    v = round_f32(randn(rng, static_cast<size_t>(N) * s.KVH * s.d));
    lg = make_log_gates(rng, static_cast<size_t>(N) * s.H * s.d, gates);
    S0 = round_f32(randn(rng, static_cast<size_t>(s.B) * s.H * s.d * s.d));
    dout = round_f32(randn(rng, static_cast<size_t>(N) * s.H * s.d));
    dSout = round_f32(randn(rng, S0.size()));
    const float nan = std::numeric_limits<float>::quiet_NaN();
    qf = to_strided(q, N, s.H * s.d, m.ldq, nan);
    kf = to_strided(k, N, s.KVH * s.d, m.ldk, nan);
    vf = to_strided(v, N, s.KVH * s.d, m.ldv, nan);
    lgf = to_strided(lg, N, s.H * s.d, m.ldg, nan);
    doutf = to_strided(dout, N, s.H * s.d, m.ldo, nan);
    S0f.assign(S0.begin(), S0.end());
    dSoutf.assign(dSout.begin(), dSout.end());
  }
  int N() const { return s.B * s.T; }
};

struct Outputs {
  std::vector<float> o, Sout, dq, dk, dv, dlg, dS0;
};

Outputs run_op(const Problem& p, bool with_states) {
  const int N = p.N(), Hd = p.s.H * p.s.d, KVd = p.s.KVH * p.s.d;
  Outputs r;
  r.o.assign(static_cast<size_t>(N) * p.m.ldo, kSentinel);
  r.Sout.assign(p.S0.size(), 0.0f);
  const Context& ctx = cpu_context(std::max(gla_forward_scratch_bytes(Device::CPU, p.m),
                                            gla_backward_scratch_bytes(Device::CPU, p.m)));
  gla_forward(ctx, r.o.data(), p.qf.data(), p.kf.data(), p.vf.data(), p.lgf.data(),
              with_states ? p.S0f.data() : nullptr, with_states ? r.Sout.data() : nullptr, p.m);
  r.dq.assign(static_cast<size_t>(N) * p.m.ldq, kSentinel);
  r.dk.assign(static_cast<size_t>(N) * p.m.ldk, kSentinel);
  r.dv.assign(static_cast<size_t>(N) * p.m.ldv, kSentinel);
  r.dlg.assign(static_cast<size_t>(N) * p.m.ldg, kSentinel);
  r.dS0.assign(p.S0.size(), 0.0f);
  gla_backward(ctx, r.dq.data(), r.dk.data(), r.dv.data(), r.dlg.data(), with_states ? r.dS0.data() : nullptr,
               p.doutf.data(), with_states ? p.dSoutf.data() : nullptr, p.qf.data(), p.kf.data(), p.vf.data(),
               p.lgf.data(), with_states ? p.S0f.data() : nullptr, p.m);
  EXPECT_TRUE(padding_intact(r.o, N, Hd, p.m.ldo));
  EXPECT_TRUE(padding_intact(r.dq, N, Hd, p.m.ldq));
  EXPECT_TRUE(padding_intact(r.dk, N, KVd, p.m.ldk));
  EXPECT_TRUE(padding_intact(r.dv, N, KVd, p.m.ldv));
  EXPECT_TRUE(padding_intact(r.dlg, N, Hd, p.m.ldg));
  return r;
}

// fp32 sums over up to d * block terms with exp() factors, against float64:
// 2e-5 of the largest value for outputs and the q/k/v gradients. The log-gate
// gradient is a reverse cumulative sum over T of differences q.dq - k.dk that
// nearly cancel (with gates near 0 the exact value is ~1e-8 of its terms), so
// its error is measured against the larger of its largest value and its
// largest term |q_ti dq_ti| (gate_err), and allowed 1e-4: float rounding of
// the terms, not of their difference, is what the op can promise.
constexpr double kTolOut = 2e-5, kTolGrad = 2e-5, kTolGate = 1e-4;

double gate_err(const Vec& got, const Vec& ref, const Vec& q, const Vec& dq) {
  double err = 0.0, mag = 0.0;
  for (size_t i = 0; i < ref.size(); ++i) {
    err = std::max(err, std::abs(got[i] - ref[i]));
    mag = std::max({mag, std::abs(ref[i]), std::abs(q[i] * dq[i])});
  }
  return mag > 0.0 ? err / mag : err;
}

void check_against_reference(const Problem& p, bool with_states, const char* what) {
  SCOPED_TRACE(what);
  const int N = p.N(), Hd = p.s.H * p.s.d, KVd = p.s.KVH * p.s.d;
  Vec o, Sout;
  GlaGrads g;
  ref_gla(p.s, p.q, p.k, p.v, p.lg, with_states ? p.S0.data() : nullptr, o, &Sout, &p.dout,
          with_states ? p.dSout.data() : nullptr, &g);
  const Outputs r = run_op(p, with_states);
  EXPECT_LT(norm_err(from_strided(r.o, N, Hd, p.m.ldo).data(), o), kTolOut);
  EXPECT_LT(norm_err(from_strided(r.dq, N, Hd, p.m.ldq).data(), g.dq), kTolGrad);
  EXPECT_LT(norm_err(from_strided(r.dk, N, KVd, p.m.ldk).data(), g.dk), kTolGrad);
  EXPECT_LT(norm_err(from_strided(r.dv, N, KVd, p.m.ldv).data(), g.dv), kTolGrad);
  EXPECT_LT(gate_err(from_strided(r.dlg, N, Hd, p.m.ldg), g.dlg, p.q, g.dq), kTolGate);
  if (with_states) {
    EXPECT_LT(norm_err(r.Sout.data(), Sout), kTolOut);
    EXPECT_LT(norm_err(r.dS0.data(), g.dstate_in), kTolGrad);
  }
}

TEST(Gla, MatchesRecurrenceAcrossShapesAndGates) {
  // T = 37 and 100 do not divide the blocks; block 64 has four sub-blocks;
  // H = 4 over KVH = 2 is GQA.
  const RefShape shapes[] = {{2, 37, 4, 2, 8}, {1, 100, 2, 2, 16}, {2, 70, 4, 1, 8}};
  const int blocks[] = {16, 64, 7};
  const Gates gates[] = {Gates::mixed, Gates::near_one, Gates::near_zero};
  const char* gate_names[] = {"mixed gates", "gates near 1", "gates near 0"};
  uint64_t seed = 11;
  for (const RefShape& s : shapes)
    for (int block : blocks)
      for (int gi = 0; gi < 3; ++gi) {
        const Problem p(s, block, gates[gi], seed++);
        const std::string what = str_cat("B=", s.B, " T=", s.T, " H=", s.H, " KVH=", s.KVH, " d=", s.d,
                                         " block=", block, ", ", gate_names[gi]);
        check_against_reference(p, true, (what + ", with boundary states").c_str());
        check_against_reference(p, false, (what + ", from zero").c_str());
      }
}

// The float64 BPTT reference itself against central differences of the
// float64 recurrence (so the kernel is not checked against a wrong gradient).
TEST(Gla, ReferenceGradientMatchesFiniteDifferences) {
  const RefShape s{1, 9, 2, 1, 3};
  Problem p(s, 4, Gates::mixed, 5);
  Vec o, Sout;
  GlaGrads g;
  ref_gla(s, p.q, p.k, p.v, p.lg, p.S0.data(), o, &Sout, &p.dout, p.dSout.data(), &g);
  auto loss = [&]() {
    Vec oo, so;
    ref_gla(s, p.q, p.k, p.v, p.lg, p.S0.data(), oo, &so);
    return dot(oo, p.dout) + dot(so, p.dSout);
  };
  EXPECT_LT(norm_err(g.dq.data(), fd_grad(p.q, loss)), 1e-7);
  EXPECT_LT(norm_err(g.dk.data(), fd_grad(p.k, loss)), 1e-7);
  EXPECT_LT(norm_err(g.dv.data(), fd_grad(p.v, loss)), 1e-7);
  EXPECT_LT(norm_err(g.dlg.data(), fd_grad(p.lg, loss)), 1e-7);
  EXPECT_LT(norm_err(g.dstate_in.data(), fd_grad(p.S0, loss)), 1e-7);
}

// Gated LASP-2 on one process: the sequence cut into W chunks, each chunk
// handled as an SP rank would (its own kernel from zero, its chunk map, the
// folds over all maps, the prefix and suffix terms), equals the unsplit op;
// with boundary states too (the state entering the sequence and the gradient
// of the one leaving it, folded in by every rank).
TEST(Gla, ChunkDecompositionEqualsUnsplitOp) {
  const RefShape s{2, 60, 4, 2, 8};
  for (const int W : {2, 3, 4})
  for (const bool states : {false, true}) {
    SCOPED_TRACE(str_cat("W=", W, states ? " with boundary states" : " from zero"));
    const Problem p(s, 16, Gates::mixed, 40 + W);
    const float* S0 = states ? p.S0f.data() : nullptr;
    const float* dSend = states ? p.dSoutf.data() : nullptr;
    const int C = s.T / W, Hd = s.H * s.d, KVd = s.KVH * s.d;
    const size_t dd = static_cast<size_t>(s.d) * s.d, BH = static_cast<size_t>(s.B) * s.H;
    const size_t map = BH * dd + BH * s.d;
    Vec o_ref, S_ref;
    GlaGrads g;
    ref_gla(s, p.q, p.k, p.v, p.lg, states ? p.S0.data() : nullptr, o_ref, &S_ref, &p.dout,
            states ? p.dSout.data() : nullptr, &g);

    // Chunk u's rows of a dense (B, T, width) tensor as a (B, C, width) one.
    auto chunk = [&](const Vec& x, int width, int u) {
      Vec out(static_cast<size_t>(s.B) * C * width);
      for (int b = 0; b < s.B; ++b)
        for (int t = 0; t < C; ++t)
          for (int e = 0; e < width; ++e)
            out[(static_cast<size_t>(b) * C + t) * width + e] =
                x[(static_cast<size_t>(b) * s.T + u * C + t) * width + e];
      return out;
    };
    LinearAttentionDims m{s.B, C, s.H, s.KVH, s.d, 16, Hd, KVd, KVd, Hd};
    m.ldg = Hd;
    const Context& ctx = cpu_context(std::max({gla_forward_scratch_bytes(Device::CPU, m),
                                               gla_backward_scratch_bytes(Device::CPU, m),
                                               gla_terms_scratch_bytes(Device::CPU, m)}));
    std::vector<std::vector<float>> q(W), k(W), v(W), lg(W), dout(W);
    std::vector<float> gathered(map * W), gathered_dP(BH * dd * W);
    for (int u = 0; u < W; ++u) {
      auto f = [](const Vec& x) { return std::vector<float>(x.begin(), x.end()); };
      q[u] = f(chunk(p.q, Hd, u));
      k[u] = f(chunk(p.k, KVd, u));
      v[u] = f(chunk(p.v, KVd, u));
      lg[u] = f(chunk(p.lg, Hd, u));
      dout[u] = f(chunk(p.dout, Hd, u));
      float* M = gathered.data() + u * map;
      gla_chunk_state(ctx, M, M + BH * dd, k[u].data(), v[u].data(), lg[u].data(), m);
      gla_prefix_state_grad(ctx, gathered_dP.data() + u * BH * dd, q[u].data(), lg[u].data(), dout[u].data(), m);
    }
    for (int j = 0; j < W; ++j) {
      SCOPED_TRACE(str_cat("chunk ", j));
      const size_t rows = static_cast<size_t>(s.B) * C;
      std::vector<float> P(BH * dd), S_out(BH * dd), G(BH * dd), o(rows * Hd);
      gla_prefix_fold(ctx, P.data(), S_out.data(), gathered.data(), S0, W, j, s.B, s.H, s.d);
      gla_forward(ctx, o.data(), q[j].data(), k[j].data(), v[j].data(), lg[j].data(), nullptr, nullptr, m);
      gla_add_prefix_output(ctx, o.data(), q[j].data(), lg[j].data(), P.data(), m);
      EXPECT_LT(norm_err(o.data(), chunk(o_ref, Hd, j)), kTolOut);
      if (j == W - 1) {
        EXPECT_LT(norm_err(S_out.data(), S_ref), kTolOut);
      }
      std::vector<float> dq(rows * Hd), dk(rows * KVd), dv(rows * KVd), dlg(rows * Hd);
      gla_backward(ctx, dq.data(), dk.data(), dv.data(), dlg.data(), nullptr, dout[j].data(), nullptr, q[j].data(),
                   k[j].data(), v[j].data(), lg[j].data(), P.data(), m);
      gla_suffix_fold(ctx, G.data(), gathered_dP.data(), gathered.data(), dSend, W, j, s.B, s.H, s.d);
      gla_add_suffix_grads(ctx, dk.data(), dv.data(), dlg.data(), k[j].data(), v[j].data(), lg[j].data(), G.data(),
                           S_out.data(), m);
      EXPECT_LT(norm_err(dq.data(), chunk(g.dq, Hd, j)), kTolGrad);
      EXPECT_LT(norm_err(dk.data(), chunk(g.dk, KVd, j)), kTolGrad);
      EXPECT_LT(norm_err(dv.data(), chunk(g.dv, KVd, j)), kTolGrad);
      EXPECT_LT(norm_err(dlg.data(), chunk(g.dlg, Hd, j)), kTolGate);
    }
    std::vector<float> S_final(BH * dd), dS0(BH * dd);  // what any rank can fold
    gla_prefix_fold(ctx, nullptr, S_final.data(), gathered.data(), S0, W, W - 1, s.B, s.H, s.d);
    EXPECT_LT(norm_err(S_final.data(), S_ref), kTolOut);
    if (states) {
      gla_suffix_fold(ctx, dS0.data(), gathered_dP.data(), gathered.data(), dSend, W, -1, s.B, s.H, s.d);
      EXPECT_LT(norm_err(dS0.data(), g.dstate_in), kTolGrad);
    }
  }
}

TEST(Gla, ChunkStateEqualsForwardFinalState) {
  const Problem p({2, 45, 4, 2, 8}, 16, Gates::mixed, 3);
  const Outputs r = run_op(p, false);
  std::vector<float> Sout(p.S0.size()), o(static_cast<size_t>(p.N()) * p.m.ldo);
  std::vector<float> M(p.S0.size()), ld(static_cast<size_t>(p.s.B) * p.s.H * p.s.d);
  const Context& ctx = cpu_context(std::max(gla_forward_scratch_bytes(Device::CPU, p.m),
                                            gla_terms_scratch_bytes(Device::CPU, p.m)));
  gla_forward(ctx, o.data(), p.qf.data(), p.kf.data(), p.vf.data(), p.lgf.data(), nullptr, Sout.data(), p.m);
  gla_chunk_state(ctx, M.data(), ld.data(), p.kf.data(), p.vf.data(), p.lgf.data(), p.m);
  EXPECT_EQ(M, Sout);  // the same block updates in the same order: bit for bit
  for (int b = 0; b < p.s.B; ++b)
    for (int h = 0; h < p.s.H; ++h)
      for (int i = 0; i < p.s.d; ++i) {
        double sum = 0.0;
        for (int t = 0; t < p.s.T; ++t) sum += p.lg[((static_cast<size_t>(b) * p.s.T + t) * p.s.H + h) * p.s.d + i];
        EXPECT_NEAR(ld[(static_cast<size_t>(b) * p.s.H + h) * p.s.d + i], sum, 1e-6 * std::abs(sum) + 1e-7);
      }
}

TEST(Gla, RefusesPositiveOrNonFiniteLogGates) {
  Problem p({1, 5, 1, 1, 4}, 4, Gates::mixed, 1);
  const Context& ctx = cpu_context(gla_forward_scratch_bytes(Device::CPU, p.m));
  std::vector<float> o(static_cast<size_t>(p.N()) * p.m.ldo);
  for (const float bad : {0.5f, std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::infinity()}) {
    p.lgf[2 * p.m.ldg + 1] = bad;
    try {
      gla_forward(ctx, o.data(), p.qf.data(), p.kf.data(), p.vf.data(), p.lgf.data(), nullptr, nullptr, p.m);
      ADD_FAILURE() << "log gate " << bad << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("must be finite and <= 0"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("token 2, column 1"), std::string::npos) << e.what();
    }
  }
}

TEST(Gla, ForgetGateMatchesFormulaAndFiniteDifferences) {
  const int N = 7, Hd = 6;
  const float tau = 16.0f;
  Rng rng(9);
  Vec u = round_f32(randn(rng, static_cast<size_t>(N) * Hd, 4.0)), bias = round_f32(randn(rng, Hd));
  u[0] = 80.0;  // far in both tails: logsigmoid stays finite and accurate
  u[1] = -80.0;
  const Vec dl = round_f32(randn(rng, u.size()));
  std::vector<float> uf(u.begin(), u.end()), bf(bias.begin(), bias.end()), lg(u.size());
  const Context& ctx = cpu_context();
  gla_gate_forward(ctx, lg.data(), uf.data(), bf.data(), N, Hd, tau);
  auto logsig = [](double x) { return x < 0 ? x - std::log1p(std::exp(x)) : -std::log1p(std::exp(-x)); };
  Vec ref(u.size());
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < Hd; ++c) ref[n * Hd + c] = logsig(u[n * Hd + c] + bias[c]) / tau;
  for (size_t e = 0; e < u.size(); ++e) EXPECT_NEAR(lg[e], ref[e], 1e-6 * std::abs(ref[e]) + 1e-12) << e;

  std::vector<float> dlf(dl.begin(), dl.end()), du(u.size()), dbias(Hd, 0.5f);
  gla_gate_backward(ctx, du.data(), dbias.data(), dlf.data(), lg.data(), N, Hd, tau);
  auto loss = [&]() {
    double acc = 0.0;
    for (int n = 0; n < N; ++n)
      for (int c = 0; c < Hd; ++c) acc += dl[n * Hd + c] * logsig(u[n * Hd + c] + bias[c]) / tau;
    return acc;
  };
  const Vec du_fd = fd_grad(u, loss), db_fd = fd_grad(bias, loss);
  EXPECT_LT(norm_err(du.data(), du_fd), 1e-5);
  for (int c = 0; c < Hd; ++c) EXPECT_NEAR(dbias[c] - 0.5f, db_fd[c], 1e-5) << c;  // accumulated onto 0.5
}

}  // namespace
