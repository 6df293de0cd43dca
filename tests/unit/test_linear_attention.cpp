// Blockwise causal linear attention kernel (runtime/ops.h, CPU body)
// against the float64 token-by-token recurrence and float64 finite differences,
// plus the LASP-2 pitfalls listed in docs/lasp2.md ("What the tests guard against").
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "runtime/cpu/gemm.h"
#include "runtime/error.h"
#include "runtime/ops.h"
#include "tests/unit/cpu_context.h"
#include "tests/unit/linear_attention_ref.h"

using namespace lintrain;
using namespace lintrain::test;

namespace {

// Row strides with padding, so the kernel is exercised on strided rows (as in
// a fused qkv buffer). Input padding holds NaN (reading it would poison the
// result); output padding holds a sentinel that must survive.
LinearAttentionDims dims_for(const RefShape& s, int block) {
  return LinearAttentionDims{s.B, s.T, s.H, s.KVH, s.d, block,
                             s.H * s.d + 3, s.KVH * s.d + 1, s.KVH * s.d + 2, s.H * s.d + 5};
}
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
    for (int j = 0; j < width; ++j)
      out[static_cast<size_t>(r) * width + j] = x[static_cast<size_t>(r) * ld + j];
  return out;
}

bool padding_intact(const std::vector<float>& x, int rows, int width, int ld) {
  for (int r = 0; r < rows; ++r)
    for (int j = width; j < ld; ++j)
      if (x[static_cast<size_t>(r) * ld + j] != kSentinel) return false;
  return true;
}

// One problem: dense float64 inputs already rounded to fp32, and their
// strided fp32 copies for the kernel.
struct Problem {
  RefShape s;
  LinearAttentionDims m;
  Vec q, k, v, S0, decay;
  std::vector<float> qf, kf, vf, S0f, decayf;

  Problem(const RefShape& shape, int block, const Vec& lambdas, uint64_t seed) : s(shape) {
    m = dims_for(s, block);
    Rng rng(seed);
    const int N = s.B * s.T;
    q = round_f32(randn(rng, static_cast<size_t>(N) * s.H * s.d));
    k = round_f32(randn(rng, static_cast<size_t>(N) * s.KVH * s.d));
    v = round_f32(randn(rng, static_cast<size_t>(N) * s.KVH * s.d));
    S0 = round_f32(randn(rng, static_cast<size_t>(s.B) * s.H * s.d * s.d));
    decay = round_f32(lambdas);
    sync();
  }
  // Re-derive the fp32 copies after editing the float64 inputs.
  void sync() {
    const int N = s.B * s.T;
    const float pad = std::numeric_limits<float>::quiet_NaN();
    qf = to_strided(q, N, s.H * s.d, m.ldq, pad);
    kf = to_strided(k, N, s.KVH * s.d, m.ldk, pad);
    vf = to_strided(v, N, s.KVH * s.d, m.ldv, pad);
    S0f.assign(S0.begin(), S0.end());
    decayf.assign(decay.begin(), decay.end());
  }
  void forward(std::vector<float>& o, std::vector<float>& S, bool with_state_in) const {
    o.assign(static_cast<size_t>(s.B) * s.T * m.ldo, kSentinel);
    S.assign(S0.size(), 0.0f);
    linear_attention_forward(cpu_context(linear_attention_forward_scratch_bytes(Device::CPU, m)), o.data(),
                             qf.data(), kf.data(), vf.data(), decayf.data(), with_state_in ? S0f.data() : nullptr,
                             S.data(), m);
  }
  void reference(Vec& o, Vec& S, bool with_state_in) const {
    ref_recurrence(s, q, k, v, decay, with_state_in ? S0.data() : nullptr, o, &S);
  }
};

}  // namespace

TEST(LinearAttentionKernel, ForwardMatchesNaiveRecurrence) {
  // fp32 error of one output: a sum over <= T*d products of O(1) values (intra
  // + inter terms), so ~ sqrt(T d) * 6e-8 relative to the output scale for
  // random signs; T*d = 800 gives ~1.7e-6 (measured max: 5e-7). 5e-6 leaves
  // that margin, while an indexing or decay-power mistake gives errors of O(1).
  const double tol = 5e-6;
  const std::vector<Vec> decay_sets = {
      {1.0, 1.0, 1.0, 1.0}, {0.99, 0.99, 0.99, 0.99}, {0.5, 0.5, 0.5, 0.5},
      {1e-3, 1e-3, 1e-3, 1e-3}, {1.0, 0.99, 0.5, 1e-3}};  // the last: a different lambda per head
  for (int T : {1, 37, 100})
    for (int block : {1, 3, 16, 64})
      for (size_t di = 0; di < decay_sets.size(); ++di)
        for (int with_state : {0, 1}) {
          SCOPED_TRACE(testing::Message() << "T=" << T << " block=" << block << " decay set "
                                          << di << " state_in=" << with_state);
          Problem p({2, T, 4, 2, 8}, block, decay_sets[di], 100 + T);
          std::vector<float> o, S;
          p.forward(o, S, with_state);
          Vec o_ref, S_ref;
          p.reference(o_ref, S_ref, with_state);
          const int N = p.s.B * T, Hd = p.s.H * p.s.d;
          EXPECT_LT(norm_err(from_strided(o, N, Hd, p.m.ldo).data(), o_ref), tol);
          EXPECT_LT(norm_err(S.data(), S_ref), tol);
          EXPECT_TRUE(padding_intact(o, N, Hd, p.m.ldo));
        }
}

TEST(LinearAttentionKernel, TinyDecayUnderflowsToZeroNotNaN) {
  // lambda^n for lambda = 1e-30 underflows fp32 from n = 2 on: the powers must
  // become exact zeros (exp(n log lambda)), never 0 * inf = NaN. The output is
  // then q_t k_t^T v_t plus a vanishing rest; same tolerance reasoning as above.
  Problem p({1, 100, 2, 1, 8}, 64, {1e-30, 1e-3}, 7);
  std::vector<float> o, S;
  p.forward(o, S, true);
  for (int r = 0; r < p.s.T; ++r)
    for (int j = 0; j < p.s.H * p.s.d; ++j) ASSERT_TRUE(std::isfinite(o[r * p.m.ldo + j]));
  for (float x : S) ASSERT_TRUE(std::isfinite(x));
  Vec o_ref, S_ref;
  p.reference(o_ref, S_ref, true);
  EXPECT_LT(norm_err(from_strided(o, p.s.T, p.s.H * p.s.d, p.m.ldo).data(), o_ref), 5e-6);
  EXPECT_LT(norm_err(S.data(), S_ref), 5e-6);
}

TEST(LinearAttentionKernel, EmptySequencePassesTheStateThrough) {
  Problem p({2, 0, 4, 2, 4}, 16, {1.0, 0.9, 0.5, 0.1}, 3);
  std::vector<float> o, S;
  p.forward(o, S, true);
  EXPECT_EQ(S, p.S0f);
}

namespace {

// dq, dk, dv, dstate_in of L = sum(dO .* O) + sum(dS .* S_T) from the kernel,
// against central differences of the float64 recurrence. L is affine in every
// single input coordinate (o and S_T are linear in q, in k and in v
// separately), so the differences have no truncation error: the reference is
// exact up to float64 rounding, ~1e-16 |L| / h ~ 1e-8 relative here.
void check_backward(const RefShape& shape, int block, const Vec& lambdas, bool with_state_in,
                    bool with_dstate_out, uint64_t seed) {
  SCOPED_TRACE(testing::Message() << "T=" << shape.T << " block=" << block << " state_in="
                                  << with_state_in << " dstate_out=" << with_dstate_out);
  Problem p(shape, block, lambdas, seed);
  const RefShape& s = p.s;
  const int N = s.B * s.T, Hd = s.H * s.d, KVd = s.KVH * s.d;
  Rng rng(seed + 1);
  const Vec dO = round_f32(randn(rng, static_cast<size_t>(N) * Hd));
  const Vec dS = with_dstate_out ? round_f32(randn(rng, p.S0.size())) : Vec(p.S0.size(), 0.0);

  // Without state_in the kernel's dstate_in is dL/dS_0 at S_0 = 0 (what LASP-2
  // needs for the first rank): differentiate the reference at a zero state.
  if (!with_state_in) std::fill(p.S0.begin(), p.S0.end(), 0.0);
  auto loss = [&]() {
    Vec o, S;
    ref_recurrence(s, p.q, p.k, p.v, p.decay, p.S0.data(), o, &S);
    return dot(dO, o) + dot(dS, S);
  };
  Vec q = p.q;  // fd_grad perturbs p's vectors in place and restores them
  const Vec gq = fd_grad(p.q, loss), gk = fd_grad(p.k, loss), gv = fd_grad(p.v, loss);
  const Vec gS = fd_grad(p.S0, loss);
  ASSERT_EQ(q, p.q);

  const std::vector<float> dOf = to_strided(dO, N, Hd, p.m.ldo, std::nanf(""));
  const std::vector<float> dSf(dS.begin(), dS.end());
  std::vector<float> dq(static_cast<size_t>(N) * p.m.ldq, kSentinel);
  std::vector<float> dk(static_cast<size_t>(N) * p.m.ldk, kSentinel);
  std::vector<float> dv(static_cast<size_t>(N) * p.m.ldv, kSentinel);
  std::vector<float> dS0(p.S0.size(), kSentinel);
  linear_attention_backward(cpu_context(linear_attention_backward_scratch_bytes(Device::CPU, p.m)), dq.data(),
                            dk.data(), dv.data(), dS0.data(), dOf.data(), with_dstate_out ? dSf.data() : nullptr,
                            p.qf.data(), p.kf.data(), p.vf.data(), p.decayf.data(),
                            with_state_in ? p.S0f.data() : nullptr, p.m);
  // Each gradient sums <= T*d (dq) or G*T*d (dk, dv) fp32 products, like the
  // forward outputs: the same 5e-6 (measured max: 2e-7).
  const double tol = 5e-6;
  EXPECT_LT(norm_err(from_strided(dq, N, Hd, p.m.ldq).data(), gq), tol);
  EXPECT_LT(norm_err(from_strided(dk, N, KVd, p.m.ldk).data(), gk), tol);
  EXPECT_LT(norm_err(from_strided(dv, N, KVd, p.m.ldv).data(), gv), tol);
  EXPECT_LT(norm_err(dS0.data(), gS), tol);
  EXPECT_TRUE(padding_intact(dq, N, Hd, p.m.ldq));
  EXPECT_TRUE(padding_intact(dk, N, KVd, p.m.ldk));
  EXPECT_TRUE(padding_intact(dv, N, KVd, p.m.ldv));
}

}  // namespace

TEST(LinearAttentionKernel, BackwardMatchesFiniteDifferences) {
  const Vec mixed = {1.0, 0.99, 0.5, 1e-3};
  check_backward({2, 10, 4, 2, 4}, 3, mixed, true, true, 11);     // tail block of 1
  check_backward({1, 37, 4, 2, 4}, 16, mixed, true, true, 12);    // tail block of 5
  check_backward({1, 37, 4, 2, 4}, 16, mixed, false, false, 13);  // no boundary states
  check_backward({1, 37, 4, 1, 4}, 16, {0.9, 0.9, 0.9, 0.9}, true, false, 14);  // G = 4
  check_backward({1, 13, 4, 4, 4}, 1, mixed, false, true, 15);    // block 1, no GQA
  check_backward({1, 13, 4, 2, 4}, 64, {1, 1, 1, 1}, true, true, 16);  // one short block
}

TEST(LinearAttentionKernel, DeterministicAcrossRunsAndThreadCounts) {
  // Each (b, kv head) is one loop iteration with a fixed operation order, and
  // gradients of a shared kv head are summed inside it: same bits every run
  // and whatever the number of threads.
  Problem p({2, 45, 4, 2, 8}, 16, {1.0, 0.99, 0.5, 1e-3}, 21);
  const int N = p.s.B * p.s.T;
  Rng rng(22);
  const std::vector<float> dO = to_strided(randn(rng, static_cast<size_t>(N) * 32), N, 32, p.m.ldo, 0);
  auto run = [&]() {
    std::vector<float> o, S;
    p.forward(o, S, true);
    std::vector<float> dq(N * p.m.ldq), dk(N * p.m.ldk), dv(N * p.m.ldv), dS0(p.S0.size());
    linear_attention_backward(cpu_context(linear_attention_backward_scratch_bytes(Device::CPU, p.m)), dq.data(),
                              dk.data(), dv.data(), dS0.data(), dO.data(), S.data(), p.qf.data(), p.kf.data(),
                              p.vf.data(), p.decayf.data(), p.S0f.data(), p.m);
    std::vector<float> all = o;
    for (const auto* x : {&S, &dq, &dk, &dv, &dS0}) all.insert(all.end(), x->begin(), x->end());
    return all;
  };
  const int threads = num_threads();
  const std::vector<float> a = run(), b = run();
  set_num_threads(1);
  const std::vector<float> c = run();
  set_num_threads(threads);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
  EXPECT_EQ(std::memcmp(a.data(), c.data(), a.size() * sizeof(float)), 0);
}

// ---- LASP-2 pitfalls (docs/lasp2.md, "What the tests guard against") ----

TEST(LinearAttentionKernel, FirstBlockOutputIsTheIntraTerm) {
  // Without an initial state the first block has no inter term: its outputs
  // are all intra-block. A kernel that drops the intra term returns zeros.
  Problem p({1, 8, 2, 1, 4}, 16, {1.0, 0.5}, 31);
  std::vector<float> o, S;
  p.forward(o, S, false);
  // o_0 = (q_0 . k_0) v_0 exactly up to one d-term dot product in fp32.
  for (int h = 0; h < 2; ++h) {
    double qk = 0;
    for (int i = 0; i < 4; ++i) qk += p.q[h * 4 + i] * p.k[i];
    for (int j = 0; j < 4; ++j) {
      const double want = qk * p.v[j];
      EXPECT_NEAR(o[h * 4 + j], want, 1e-5 * (1 + std::abs(want)));  // 4-term fp32 dot
      EXPECT_NE(o[h * 4 + j], 0.0f);
    }
  }
}

TEST(LinearAttentionKernel, NoFutureTokenLeaksInsideABlock) {
  // Perturb token t*; every output before t* must keep its exact bits. t* sits
  // inside a block (block 16: position 5 of the second block; block 64: the
  // whole sequence is one diagonal block).
  for (int block : {16, 64}) {
    const int tstar = 21;
    Problem p({1, 37, 4, 2, 4}, block, {1.0, 0.99, 0.5, 1e-3}, 41);
    std::vector<float> o0, S0, o1, S1;
    p.forward(o0, S0, true);
    for (int j = 0; j < 16; ++j) p.q[tstar * 16 + j] += 1.0;
    for (int j = 0; j < 8; ++j) p.k[tstar * 8 + j] -= 2.0, p.v[tstar * 8 + j] += 3.0;
    p.sync();
    p.forward(o1, S1, true);
    for (int t = 0; t < tstar; ++t)
      EXPECT_EQ(std::memcmp(&o0[t * p.m.ldo], &o1[t * p.m.ldo], 16 * sizeof(float)), 0)
          << "block " << block << ": token " << t << " sees token " << tstar;
    EXPECT_NE(std::memcmp(&o0[tstar * p.m.ldo], &o1[tstar * p.m.ldo], 16 * sizeof(float)), 0);
  }
}

TEST(LinearAttentionKernel, TailTokensAreNotDropped) {
  // T = 2 * 16 + 5: the 5 tail tokens get outputs, and feed the final state.
  Problem p({1, 37, 2, 2, 4}, 16, {0.9, 1.0}, 51);
  std::vector<float> o, S;
  p.forward(o, S, false);
  Vec o_ref, S_ref;
  p.reference(o_ref, S_ref, false);
  for (int t = 32; t < 37; ++t)
    for (int j = 0; j < 8; ++j) {
      const double want = o_ref[t * 8 + j];
      EXPECT_NEAR(o[t * p.m.ldo + j], want, 5e-6 * (1 + std::abs(want)));  // as in the forward test
      EXPECT_NE(o[t * p.m.ldo + j], 0.0f);
    }
  EXPECT_LT(norm_err(S.data(), S_ref), 5e-6);
  // The last token's key/value reach the final state.
  p.v[36 * 8] += 1.0;
  p.sync();
  std::vector<float> o2, S2;
  p.forward(o2, S2, false);
  EXPECT_NE(S, S2);
}

TEST(LinearAttentionKernel, RejectsBadArguments) {
  Problem p({1, 4, 4, 2, 4}, 2, {1, 1, 1, 1}, 61);
  std::vector<float> o(4 * p.m.ldo);
  auto call = [&](LinearAttentionDims m, const float* decay) {
    linear_attention_forward(cpu_context(linear_attention_forward_scratch_bytes(Device::CPU, m)), o.data(),
                             p.qf.data(), p.kf.data(), p.vf.data(), decay, nullptr, nullptr, m);
  };
  LinearAttentionDims m = p.m;
  m.KVH = 3;
  EXPECT_THROW(call(m, p.decayf.data()), Error);  // H % KVH != 0
  m = p.m;
  m.block = 0;
  EXPECT_THROW(call(m, p.decayf.data()), Error);
  m = p.m;
  m.ldq = m.H * m.d - 1;
  EXPECT_THROW(call(m, p.decayf.data()), Error);
  const float zero[4] = {1, 1, 0, 1}, big[4] = {1, 1.5f, 1, 1};
  EXPECT_THROW(call(p.m, zero), Error);
  EXPECT_THROW(call(p.m, big), Error);
  EXPECT_NO_THROW(call(p.m, p.decayf.data()));
}
