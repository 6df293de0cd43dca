// LASP-2 math pieces without the layer: the chunk-boundary terms
// (runtime/ops.h) against float64 sums written from docs/lasp2.md, and
// the prefix/suffix merges (runtime/ops.h) against the naive token-by-token
// recurrence of the whole sequence in float64, for lambda from 1 down to 1e-30.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "parallel/lasp2.h"
#include "runtime/error.h"
#include "runtime/ops.h"
#include "tests/unit/cpu_context.h"
#include "tests/unit/linear_attention_ref.h"
#include "tests/unit/sp_test_group.h"

using namespace lintrain;
using namespace lintrain::test;

namespace {

// One chunk: q|k|v fused in rows of width W plus one NaN pad column (the
// functions must honour the strides and never read the pad), states dense.
struct Chunk {
  RefShape s;  // T = C, the chunk length
  int block, W, ld;
  Vec q, k, v, dO, P, G, decay;  // dense float64 (already fp32-rounded)
  std::vector<float> qkv, dOf, Pf, Gf, decayf;

  Chunk(const RefShape& shape, int blk, const Vec& lambdas, uint64_t seed) : s(shape), block(blk) {
    const int N = s.B * s.T, Hd = s.H * s.d, KVd = s.KVH * s.d;
    W = Hd + 2 * KVd;
    ld = W + 1;
    Rng rng(seed);
    q = round_f32(randn(rng, static_cast<size_t>(N) * Hd));
    k = round_f32(randn(rng, static_cast<size_t>(N) * KVd));
    v = round_f32(randn(rng, static_cast<size_t>(N) * KVd));
    dO = round_f32(randn(rng, static_cast<size_t>(N) * Hd));
    P = round_f32(randn(rng, static_cast<size_t>(s.B) * s.H * s.d * s.d));
    G = round_f32(randn(rng, P.size()));
    decay = round_f32(lambdas);
    qkv.assign(static_cast<size_t>(N) * ld, std::numeric_limits<float>::quiet_NaN());
    for (int n = 0; n < N; ++n) {
      for (int j = 0; j < Hd; ++j) qkv[n * ld + j] = static_cast<float>(q[n * Hd + j]);
      for (int j = 0; j < KVd; ++j) {
        qkv[n * ld + Hd + j] = static_cast<float>(k[n * KVd + j]);
        qkv[n * ld + Hd + KVd + j] = static_cast<float>(v[n * KVd + j]);
      }
    }
    dOf.assign(dO.begin(), dO.end());
    Pf.assign(P.begin(), P.end());
    Gf.assign(G.begin(), G.end());
    decayf.assign(decay.begin(), decay.end());
  }
  LinearAttentionDims dims() const {
    return {s.B, s.T, s.H, s.KVH, s.d, block, ld, ld, ld, s.H * s.d};
  }
  const float* qp() const { return qkv.data(); }
  const float* kp() const { return qkv.data() + s.H * s.d; }
  const float* vp() const { return qkv.data() + (s.H + s.KVH) * s.d; }
  // Index helpers into the dense float64 arrays.
  size_t iq(int b, int t, int h, int a) const { return ((static_cast<size_t>(b) * s.T + t) * s.H + h) * s.d + a; }
  size_t ik(int b, int t, int g, int a) const { return ((static_cast<size_t>(b) * s.T + t) * s.KVH + g) * s.d + a; }
  size_t is(int b, int h, int a, int c) const { return ((static_cast<size_t>(b) * s.H + h) * s.d + a) * s.d + c; }
  double Lq(int h, int i) const { return std::pow(decay[h], i + 1); }
  double Lk(int h, int t) const { return std::pow(decay[h], s.T - 1 - t); }
};

// The float64 definitions of docs/lasp2.md (0-based: Lq[i] = lambda^(i+1), Lk[s] = lambda^(C-1-s)).
struct RefTerms {
  Vec M, o, dP, dq, dk, dv;
  explicit RefTerms(const Chunk& c) {
    const RefShape& s = c.s;
    const int d = s.d, G = s.H / s.KVH;
    M.assign(c.P.size(), 0.0);
    dP.assign(c.P.size(), 0.0);
    o.assign(c.q.size(), 0.0);
    dq.assign(c.q.size(), 0.0);
    dk.assign(c.k.size(), 0.0);
    dv.assign(c.k.size(), 0.0);
    for (int b = 0; b < s.B; ++b)
      for (int h = 0; h < s.H; ++h) {
        const int g = h / G;
        for (int t = 0; t < s.T; ++t)
          for (int a = 0; a < d; ++a)
            for (int e = 0; e < d; ++e) {
              M[c.is(b, h, a, e)] += c.Lk(h, t) * c.k[c.ik(b, t, g, a)] * c.v[c.ik(b, t, g, e)];
              dP[c.is(b, h, a, e)] += c.Lq(h, t) * c.q[c.iq(b, t, h, a)] * c.dO[c.iq(b, t, h, e)];
              o[c.iq(b, t, h, e)] += c.Lq(h, t) * c.q[c.iq(b, t, h, a)] * c.P[c.is(b, h, a, e)];
              dq[c.iq(b, t, h, a)] += c.Lq(h, t) * c.dO[c.iq(b, t, h, e)] * c.P[c.is(b, h, a, e)];
              dk[c.ik(b, t, g, a)] += c.Lk(h, t) * c.v[c.ik(b, t, g, e)] * c.G[c.is(b, h, a, e)];
              dv[c.ik(b, t, g, e)] += c.Lk(h, t) * c.k[c.ik(b, t, g, a)] * c.G[c.is(b, h, a, e)];
            }
      }
  }
};

// Columns [col, col + width) of the ld-strided rows, as float64.
Vec columns(const std::vector<float>& x, int rows, int ld, int col, int width) {
  Vec out(static_cast<size_t>(rows) * width);
  for (int r = 0; r < rows; ++r)
    for (int j = 0; j < width; ++j) out[static_cast<size_t>(r) * width + j] = x[static_cast<size_t>(r) * ld + col + j];
  return out;
}

// Each term is a sum of <= C*d (M, dP) or <= G*d (o, dq, dk, dv per head
// group) fp32 products of O(1) values: ~sqrt(C d) * 6e-8 ~ 1e-6 relative for
// C*d = 11*8; 5e-6 leaves margin, while a wrong power (off by one lambda)
// gives errors of order 1 - lambda >= 1e-2 here (the lambda = 1 head aside).
constexpr double kTermTol = 5e-6;

void check_terms(const RefShape& shape, int block, const Vec& lambdas, uint64_t seed) {
  SCOPED_TRACE(testing::Message() << "C=" << shape.T << " block=" << block << " H=" << shape.H
                                  << " KVH=" << shape.KVH);
  const Chunk c(shape, block, lambdas, seed);
  const RefTerms ref(c);
  const LinearAttentionDims m = c.dims();
  const Context& ctx = cpu_context(lasp2_terms_scratch_bytes(Device::CPU, m));
  const int N = shape.B * shape.T, Hd = shape.H * shape.d, KVd = shape.KVH * shape.d;

  std::vector<float> M(c.P.size(), 7.0f), dP(c.P.size(), 7.0f);
  lasp2_chunk_state(ctx, M.data(), c.kp(), c.vp(), c.decayf.data(), m);
  lasp2_prefix_state_grad(ctx, dP.data(), c.qp(), c.dOf.data(), c.decayf.data(), m);
  EXPECT_LT(norm_err(M.data(), ref.M), kTermTol);
  EXPECT_LT(norm_err(dP.data(), ref.dP), kTermTol);

  // The accumulating ones start from a known base: out = base + term.
  std::vector<float> o(c.dOf);  // base = dO, layout (N, H d) with ldo = H d
  lasp2_add_prefix_output(ctx, o.data(), c.qp(), c.Pf.data(), c.decayf.data(), m);
  Vec want = ref.o;
  for (size_t i = 0; i < want.size(); ++i) want[i] += c.dO[i];
  EXPECT_LT(norm_err(o.data(), want), kTermTol);

  std::vector<float> dqkv(c.qkv);  // base = the inputs themselves, pad stays NaN
  lasp2_add_prefix_dq(ctx, dqkv.data(), c.dOf.data(), c.Pf.data(), c.decayf.data(), m);
  lasp2_add_suffix_dkdv(ctx, dqkv.data() + Hd, dqkv.data() + Hd + KVd, c.kp(), c.vp(), c.Gf.data(),
                        c.decayf.data(), m);
  Vec wq = ref.dq, wk = ref.dk, wv = ref.dv;
  for (size_t i = 0; i < wq.size(); ++i) wq[i] += c.q[i];
  for (size_t i = 0; i < wk.size(); ++i) {
    wk[i] += c.k[i];
    wv[i] += c.v[i];
  }
  EXPECT_LT(norm_err(columns(dqkv, N, c.ld, 0, Hd).data(), wq), kTermTol);
  EXPECT_LT(norm_err(columns(dqkv, N, c.ld, Hd, KVd).data(), wk), kTermTol);
  EXPECT_LT(norm_err(columns(dqkv, N, c.ld, Hd + KVd, KVd).data(), wv), kTermTol);
  for (int n = 0; n < N; ++n) EXPECT_TRUE(std::isnan(dqkv[static_cast<size_t>(n) * c.ld + c.W]));
}

}  // namespace

TEST(Lasp2Terms, MatchTheFormulasInFloat64) {
  // One decay per head: none, strong, near 1, near 0 (underflows from n = 3 on).
  const Vec lambdas = {1.0, 0.5, 0.9999, 1e-20};
  check_terms({2, 11, 4, 2, 8}, 4, lambdas, 1);   // 11 = 2 blocks of 4 + a tail of 3, GQA
  check_terms({2, 11, 4, 4, 8}, 16, lambdas, 2);  // one short block, no GQA
  check_terms({1, 5, 4, 1, 4}, 1, lambdas, 3);    // block 1, one kv head for all
}

TEST(Lasp2Terms, ChunkStateIsTheKernelsFinalState) {
  // M_j is what the blockwise kernel leaves behind from a zero state (the
  // kernel builds it by the recurrence S = lambda^c S + ..., here directly).
  const Chunk c({2, 13, 4, 2, 8}, 5, {1.0, 0.9, 0.5, 0.01}, 9);
  const LinearAttentionDims m = c.dims();
  const Context& ctx = cpu_context(std::max(lasp2_terms_scratch_bytes(Device::CPU, m),
                                            linear_attention_forward_scratch_bytes(Device::CPU, m)));
  std::vector<float> M(c.P.size()), S(c.P.size()), o(c.q.size());
  lasp2_chunk_state(ctx, M.data(), c.kp(), c.vp(), c.decayf.data(), m);
  linear_attention_forward(ctx, o.data(), c.qp(), c.kp(), c.vp(), c.decayf.data(), nullptr, S.data(), m);
  const Vec Sd(S.begin(), S.end());
  EXPECT_LT(norm_err(M.data(), Sd), kTermTol);
}

namespace {

// The naive recurrence over a whole sequence of W chunks of C tokens (one
// batch row, H heads, no GQA), in float64:
//   state entering chunk j  = S_{jC-1}         (forward recurrence)
//   dL/d(state leaving j)   = lambda R_{(j+1)C} with R_t = q_t^T do_t + lambda R_{t+1}
// and the per-chunk pieces M_u (from a zero state) and dP_u (the same backward
// recurrence restricted to chunk u) the merges take as input.
struct NaiveSequence {
  int W, C, H, d;
  Vec q, k, v, dO, decay;
  std::vector<Vec> enter, leave_grad, M, dP;  // per chunk, (H, d, d)

  NaiveSequence(int W_, int C_, int H_, int d_, const Vec& lambdas, uint64_t seed)
      : W(W_), C(C_), H(H_), d(d_), decay(lambdas) {
    Rng rng(seed);
    const size_t n = static_cast<size_t>(W) * C * H * d;
    q = randn(rng, n), k = randn(rng, n), v = randn(rng, n), dO = randn(rng, n);
    const size_t dd = static_cast<size_t>(d) * d;
    enter.assign(W, Vec(H * dd, 0.0));
    leave_grad = M = dP = enter;
    for (int h = 0; h < H; ++h) {
      const double lam = decay[h];
      Vec S(dd, 0.0), Sc(dd, 0.0);  // whole-sequence state, chunk-local state
      for (int t = 0; t < W * C; ++t) {
        const int u = t / C;
        if (t % C == 0) {
          std::copy(S.begin(), S.end(), enter[u].begin() + h * dd);
          std::fill(Sc.begin(), Sc.end(), 0.0);
        }
        for (int a = 0; a < d; ++a)
          for (int e = 0; e < d; ++e) {
            const double kv = at(k, t, h, a) * at(v, t, h, e);
            S[a * d + e] = lam * S[a * d + e] + kv;
            Sc[a * d + e] = lam * Sc[a * d + e] + kv;
          }
        if (t % C == C - 1) std::copy(Sc.begin(), Sc.end(), M[u].begin() + h * dd);
      }
      Vec R(dd, 0.0), Rc(dd, 0.0);
      for (int t = W * C - 1; t >= 0; --t) {
        const int u = t / C;
        if (t % C == C - 1) {
          for (size_t i = 0; i < dd; ++i) leave_grad[u][h * dd + i] = lam * R[i];
          std::fill(Rc.begin(), Rc.end(), 0.0);
        }
        for (int a = 0; a < d; ++a)
          for (int e = 0; e < d; ++e) {
            const double qd = at(q, t, h, a) * at(dO, t, h, e);
            R[a * d + e] = qd + lam * R[a * d + e];
            Rc[a * d + e] = qd + lam * Rc[a * d + e];
          }
        if (t % C == 0)
          for (size_t i = 0; i < dd; ++i) dP[u][h * dd + i] = lam * Rc[i];
      }
    }
  }
  double at(const Vec& x, int t, int h, int a) const { return x[(static_cast<size_t>(t) * H + h) * d + a]; }
};

// A CPU context with room for the merges of (B, H, d) states.
const Context& merge_ctx(int B, int H, int d) {
  return cpu_context(lasp2_merge_states_scratch_bytes(Device::CPU, B, H, d));
}

// Rank-major (W, 1, H, d, d) fp32 buffer of per-chunk states.
std::vector<float> gather(const std::vector<Vec>& per_chunk) {
  std::vector<float> out;
  for (const Vec& s : per_chunk) out.insert(out.end(), s.begin(), s.end());
  return out;
}

}  // namespace

TEST(Lasp2Merges, PrefixAndSuffixEqualTheNaiveRecurrence) {
  // Each merged element is a sum of <= W terms of fp32-rounded states
  // (relative error 6e-8 each), summed in double: the error is that of the
  // inputs' rounding, ~1e-7 of the state's scale; 1e-6 leaves margin. A wrong
  // exponent (C (j-u) instead of C (j-1-u)) is off by a factor lambda^C.
  const double tol = 1e-6;
  const Vec lambdas = {1.0, 0.7, 0.99999, 1e-20, 0.95};
  for (int W : {1, 2, 3, 5})
    for (int C : {1, 3, 8}) {
      const NaiveSequence seq(W, C, 5, 3, lambdas, 40 + W * 10 + C);
      const std::vector<float> Ms = gather(seq.M), dPs = gather(seq.dP);
      const std::vector<float> decay(lambdas.begin(), lambdas.end());
      for (int j = 0; j < W; ++j) {
        SCOPED_TRACE(testing::Message() << "W=" << W << " C=" << C << " j=" << j);
        std::vector<float> P(seq.enter[j].size(), 7.0f), G(P.size(), 7.0f);
        lasp2_prefix_states(merge_ctx(1, 5, 3), P.data(), Ms.data(), W, j, 1, 5, 3, C, decay.data());
        lasp2_suffix_states(merge_ctx(1, 5, 3), G.data(), dPs.data(), W, j, 1, 5, 3, C, decay.data());
        EXPECT_LT(norm_err(P.data(), seq.enter[j]), tol);
        EXPECT_LT(norm_err(G.data(), seq.leave_grad[j]), tol);
        const std::vector<float> zeros(P.size(), 0.0f);
        if (j == 0) {
          EXPECT_EQ(P, zeros);  // nothing before chunk 0
        }
        if (j == W - 1) {
          EXPECT_EQ(G, zeros);  // nothing after the last chunk
        }
      }
    }
}

TEST(Lasp2Merges, UnderflowGivesZeroNotNaN) {
  // lambda = 1e-30 and C = 1000: lambda^C underflows even in double; the
  // weights must be exact zeros and the result finite: P_j = M_{j-1} only.
  const int W = 4, C = 1000, H = 2, d = 2;
  const std::vector<float> decay = {1e-30f, 1.0f};
  std::vector<float> M(static_cast<size_t>(W) * H * d * d);
  for (size_t i = 0; i < M.size(); ++i) M[i] = 1e30f * static_cast<float>(i + 1);
  std::vector<float> P(H * d * d), G(P.size());
  lasp2_prefix_states(merge_ctx(1, H, d), P.data(), M.data(), W, 3, 1, H, d, C, decay.data());
  lasp2_suffix_states(merge_ctx(1, H, d), G.data(), M.data(), W, 0, 1, H, d, C, decay.data());
  for (int i = 0; i < d * d; ++i) {
    EXPECT_EQ(P[i], M[2 * H * d * d + i]);  // head 0: only the neighbour chunk
    EXPECT_EQ(G[i], M[1 * H * d * d + i]);
    // head 1 (no decay): plain sums of three chunks' states, finite
    const size_t j = d * d + i, s = H * d * d;
    EXPECT_FLOAT_EQ(P[j], M[j] + M[s + j] + M[2 * s + j]);
    EXPECT_FLOAT_EQ(G[j], M[s + j] + M[2 * s + j] + M[3 * s + j]);
  }
}

TEST(Lasp2StateExchange, GathersAndMergesOverRanks) {
  const int B = 2, H = 3, d = 4, C = 6;
  const std::vector<float> decay = {1.0f, 0.8f, 0.3f};
  const size_t n = static_cast<size_t>(B) * H * d * d;
  for (int W : {2, 3, 4}) {
    std::vector<float> all(W * n);  // every rank's state, rank-major
    Rng rng(W);
    for (auto& x : all) x = static_cast<float>(rng.normal());
    std::vector<std::vector<float>> P(W, std::vector<float>(n)), G = P;
    std::vector<CommStats> stats(W);
    SpTestGroup::run(W, [&](Communicator& comm, int r) {
      Lasp2StateExchange ex(merge_ctx(B, H, d), &comm, B, H, d, C, decay);
      EXPECT_EQ(ex.state_floats(), n);
      std::copy(all.begin() + r * n, all.begin() + (r + 1) * n, ex.local_state());
      ex.begin_forward();
      ex.end_forward(P[r].data());
      std::copy(all.begin() + r * n, all.begin() + (r + 1) * n, ex.local_state());
      ex.begin_backward();
      EXPECT_THROW(ex.end_forward(P[r].data()), Error);  // wrong direction: refused, nothing waited
      ex.end_backward(G[r].data());
      EXPECT_THROW(ex.end_backward(G[r].data()), Error);  // nothing in flight
      stats[r] = comm.stats();
    });
    for (int r = 0; r < W; ++r) {
      std::vector<float> want(n);
      lasp2_prefix_states(merge_ctx(B, H, d), want.data(), all.data(), W, r, B, H, d, C, decay.data());
      EXPECT_EQ(P[r], want);
      lasp2_suffix_states(merge_ctx(B, H, d), want.data(), all.data(), W, r, B, H, d, C, decay.data());
      EXPECT_EQ(G[r], want);
      EXPECT_EQ(stats[r].all_gather_calls, 2u);
      EXPECT_EQ(stats[r].all_gather_bytes, 2 * n * sizeof(float));
      EXPECT_EQ(stats[r].all_reduce_calls + stats[r].reduce_scatter_calls, 0u);
    }
  }
}

// The exchange's buffers live where its communicator takes them: a host
// communicator under a CUDA layer is refused, naming both.
TEST(Lasp2StateExchange, RefusesACommunicatorOfAnotherDevice) {
  auto comm = make_self_communicator();
  Context cuda;
  cuda.device = Device::CUDA;
  try {
    Lasp2StateExchange ex(cuda, comm.get(), 1, 2, 4, 8, {0.5f, 0.9f});
    FAIL() << "accepted a host communicator for a CUDA layer";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("the SP communicator (self) takes cpu buffers but the layer runs on cuda"),
              std::string::npos)
        << e.what();
  }
}
