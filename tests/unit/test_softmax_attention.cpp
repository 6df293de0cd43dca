// RoPE, the causal softmax-attention kernel and the layer core, checked against
// independent float64 references written here (naive loops: full score
// matrix, causal mask, softmax; RoPE as HF writes it), float64 central finite
// differences, exact causality and bit-reproducibility.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "layers/softmax_attention.h"
#include "runtime/cpu/gemm.h"
#include "runtime/ops.h"
#include "runtime/rope_table.h"
#include "runtime/error.h"
#include "runtime/ops.h"
#include "runtime/rng.h"
#include "tests/unit/cpu_context.h"

using namespace lintrain;
using lintrain::test::cpu_context;

namespace {

const float kNaN = std::numeric_limits<float>::quiet_NaN();

// A (rows, width) float activation with row stride ld = width + pad. Every
// element starts as NaN: a kernel that reads padding, or leaves an output
// element unassigned, shows up as NaN in the comparison.
struct Act {
  int rows = 0, width = 0, ld = 0;
  std::vector<float> buf;
  Act() = default;
  Act(int r, int w, int pad) : rows(r), width(w), ld(w + pad), buf(static_cast<size_t>(r) * (w + pad), kNaN) {}
  float* p() { return buf.data(); }
  float& at(size_t i) { return buf[(i / width) * ld + i % width]; }  // i: dense index r*width + c
  float at(size_t i) const { return buf[(i / width) * ld + i % width]; }
  size_t numel() const { return static_cast<size_t>(rows) * width; }
  void randn(Rng& rng, double scale = 1.0) {
    for (size_t i = 0; i < numel(); ++i) at(i) = static_cast<float>(scale * rng.normal());
  }
  std::vector<double> dense() const {
    std::vector<double> out(numel());
    for (size_t i = 0; i < numel(); ++i) out[i] = at(i);
    return out;
  }
  bool padding_untouched() const {
    for (int r = 0; r < rows; ++r)
      for (int c = width; c < ld; ++c)
        if (!std::isnan(buf[static_cast<size_t>(r) * ld + c])) return false;
    return true;
  }
};

// ---- float64 references ------------------------------------------------------

// HF Llama RoPE, literally: y = x * cat(cos, cos) + rotate_half(x) * cat(sin, sin),
// rotate_half(x) = cat(-x2, x1), inv_freq_i = 1 / theta^(2i/d).
void ref_rope_head(double* x, int d, double pos, double theta) {
  std::vector<double> y(d);
  for (int j = 0; j < d; ++j) {
    const int i = j % (d / 2);
    const double angle = pos * (1.0 / std::pow(theta, 2.0 * i / d));
    const double rot = j < d / 2 ? -x[j + d / 2] : x[j - d / 2];
    y[j] = x[j] * std::cos(angle) + rot * std::sin(angle);
  }
  for (int j = 0; j < d; ++j) x[j] = y[j];
}

// Dense q (B,Tq,H,d), k/v (B,Tk,KVH,d) -> o (B,Tq,H,d) and lse (B,H,Tq).
std::vector<double> ref_attention(const AttentionDims& a, const std::vector<double>& q, const std::vector<double>& k,
                                  const std::vector<double>& v, std::vector<double>* lse = nullptr) {
  const int d = a.d, group = a.H / a.KVH;
  std::vector<double> o(static_cast<size_t>(a.B) * a.Tq * a.H * d, 0.0), S(static_cast<size_t>(a.Tq) * a.Tk);
  if (lse) lse->assign(static_cast<size_t>(a.B) * a.H * a.Tq, 0.0);
  for (int b = 0; b < a.B; ++b)
    for (int h = 0; h < a.H; ++h) {
      const int g = h / group;
      auto qrow = [&](int t) { return &q[((static_cast<size_t>(b) * a.Tq + t) * a.H + h) * d]; };
      auto krow = [&](int j) { return &k[((static_cast<size_t>(b) * a.Tk + j) * a.KVH + g) * d]; };
      auto vrow = [&](int j) { return &v[((static_cast<size_t>(b) * a.Tk + j) * a.KVH + g) * d]; };
      for (int t = 0; t < a.Tq; ++t)  // the full score matrix, then the mask
        for (int j = 0; j < a.Tk; ++j) {
          double s = 0;
          for (int c = 0; c < d; ++c) s += qrow(t)[c] * krow(j)[c];
          S[static_cast<size_t>(t) * a.Tk + j] =
              j <= a.q_offset + t ? s / std::sqrt(static_cast<double>(d)) : -INFINITY;
        }
      for (int t = 0; t < a.Tq; ++t) {
        double* st = &S[static_cast<size_t>(t) * a.Tk];
        double m = -INFINITY, sum = 0;
        for (int j = 0; j < a.Tk; ++j) m = std::max(m, st[j]);
        for (int j = 0; j < a.Tk; ++j) sum += std::exp(st[j] - m);
        double* ot = &o[((static_cast<size_t>(b) * a.Tq + t) * a.H + h) * d];
        for (int j = 0; j < a.Tk; ++j)
          for (int c = 0; c < d; ++c) ot[c] += std::exp(st[j] - m) / sum * vrow(j)[c];
        if (lse) (*lse)[(static_cast<size_t>(b) * a.H + h) * a.Tq + t] = m + std::log(sum);
      }
    }
  return o;
}

double dot(const std::vector<double>& x, const std::vector<double>& y) {
  double s = 0;
  for (size_t i = 0; i < x.size(); ++i) s += x[i] * y[i];
  return s;
}

// The layer: split qkv rows, HF RoPE on q and k at positions pos_offset + t, attention.
std::vector<double> ref_layer(const ModelConfig& cfg, int B, int T, int pos_offset, const std::vector<double>& qkv) {
  const int H = cfg.num_attention_heads, KVH = cfg.kv_heads(), d = cfg.head_dim(), W = (H + 2 * KVH) * d;
  AttentionDims a{B, T, T, H, KVH, d, 0, 64};
  std::vector<double> q, k, v;
  for (int r = 0; r < B * T; ++r) {
    const double* row = &qkv[static_cast<size_t>(r) * W];
    q.insert(q.end(), row, row + H * d);
    k.insert(k.end(), row + H * d, row + (H + KVH) * d);
    v.insert(v.end(), row + (H + KVH) * d, row + W);
    const double pos = pos_offset + r % T;
    for (int h = 0; h < H; ++h) ref_rope_head(&q[q.size() - (H - h) * d], d, pos, cfg.rope_theta);
    for (int h = 0; h < KVH; ++h) ref_rope_head(&k[k.size() - (KVH - h) * d], d, pos, cfg.rope_theta);
  }
  return ref_attention(a, q, k, v);
}

// Every index when n <= count, else a fixed random sample of `count` indices.
std::vector<size_t> sample(size_t n, size_t count, Rng& rng) {
  std::vector<size_t> idx;
  for (size_t i = 0; i < n && n <= count; ++i) idx.push_back(i);
  for (size_t i = 0; n > count && i < count; ++i) idx.push_back(rng.below(n));
  return idx;
}

// Central difference of f at x[i] in float64. h = 1e-4: truncation error
// h^2/6 * |f'''| ~ 1e-8 * |f'''| and rounding ~ 1e-16 * |f| / h ~ 1e-11,
// both far below the float32 kernel's own error.
template <typename F>
double central_difference(std::vector<double>& x, size_t i, const F& f) {
  const double h = 1e-4, x0 = x[i];
  x[i] = x0 + h;
  const double fp = f();
  x[i] = x0 - h;
  const double fm = f();
  x[i] = x0;
  return (fp - fm) / (2 * h);
}

// ---- kernel runs ------------------------------------------------------------

struct KernelRun {
  AttentionDims a;
  Act q, k, v, o, dout, dq, dk, dv;
  std::vector<float> lse;
  KernelRun(const AttentionDims& dims, uint64_t seed, int pad, double qk_scale = 1.0) : a(dims) {
    const int Nq = a.B * a.Tq, Nk = a.B * a.Tk, Wq = a.H * a.d, Wk = a.KVH * a.d;
    q = Act(Nq, Wq, pad), k = Act(Nk, Wk, pad + 1), v = Act(Nk, Wk, pad + 2), o = Act(Nq, Wq, pad);
    dout = Act(Nq, Wq, pad + 3), dq = Act(Nq, Wq, pad + 1), dk = Act(Nk, Wk, pad), dv = Act(Nk, Wk, pad + 2);
    Rng rng(seed);
    q.randn(rng, qk_scale), k.randn(rng, qk_scale), v.randn(rng), dout.randn(rng);
    lse.assign(static_cast<size_t>(a.B) * a.H * a.Tq, kNaN);
  }
  void forward() {
    softmax_attention_forward(cpu_context(softmax_attention_forward_scratch_bytes(Device::CPU, a)), a, o.p(), o.ld,
                              lse.data(), q.p(), q.ld, k.p(), k.ld, v.p(), v.ld);
  }
  void backward() {
    softmax_attention_backward(cpu_context(softmax_attention_backward_scratch_bytes(Device::CPU, a)), a, dq.p(),
                               dq.ld, dk.p(), dk.ld, dv.p(), dv.ld, dout.p(), dout.ld, q.p(), q.ld,
                               k.p(), k.ld, v.p(), v.ld, o.p(), o.ld, lse.data());
  }
  // Every output (values and gradients) concatenated, for bitwise comparisons.
  std::vector<float> all_outputs() const {
    std::vector<float> all = o.buf;
    for (const auto* x : {&lse, &dq.buf, &dk.buf, &dv.buf}) all.insert(all.end(), x->begin(), x->end());
    return all;
  }
};

bool bitwise_equal(const std::vector<float>& x, const std::vector<float>& y) {
  return x.size() == y.size() && std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0;
}

AttentionDims dims(int B, int T, int H, int KVH, int d, int q_block = 64) { return {B, T, T, H, KVH, d, 0, q_block}; }

}  // namespace

// ---- RoPE --------------------------------------------------------------------

TEST(Rope, ForwardMatchesHfFormulaInFloat64) {
  const int B = 2, T = 7, heads = 3, d = 16, ld = heads * d + 5;
  for (double theta : {10000.0, 500000.0})
    for (int pos_offset : {0, 1000, 100000}) {
      Act x(B * T, heads * d, ld - heads * d);
      Rng rng(11);
      x.randn(rng);
      const std::vector<double> x0 = x.dense();
      rope_forward(Context{}, x.p(), x.ld, B, T, heads, pos_offset, RopeTable(d, theta, pos_offset, T));
      EXPECT_TRUE(x.padding_untouched());
      for (int r = 0; r < B * T; ++r)
        for (int h = 0; h < heads; ++h) {
          const size_t base = static_cast<size_t>(r) * heads * d + h * d;
          std::vector<double> want(x0.begin() + base, x0.begin() + base + d);
          ref_rope_head(want.data(), d, pos_offset + r % T, theta);
          for (int j = 0; j < d; ++j) {
            // y = a*c - b*s in float: c, s rounded (2^-24 relative each), two
            // products and one sum rounded -> |err| <= 3 * 2^-24 * (|a| + |b|);
            // 4x leaves room for FMA contraction differences.
            const double a = x0[base + j], b = x0[base + (j + d / 2) % d];
            EXPECT_NEAR(x.at(base + j), want[j], 4 * 0x1p-24 * (std::fabs(a) + std::fabs(b)))
                << "theta " << theta << " pos " << pos_offset + r % T << " head " << h << " j " << j;
          }
        }
    }
}

TEST(Rope, BackwardIsTheExactTranspose) {
  const int B = 3, T = 9, heads = 2, d = 8, pos_offset = 17;
  const RopeTable table(d, 10000.0, 10, 40);  // a table wider than the positions used
  Act x(B * T, heads * d, 2), y(B * T, heads * d, 2);
  Rng rng(5);
  x.randn(rng), y.randn(rng);
  Act Rx = x, Rty = y;
  rope_forward(Context{}, Rx.p(), Rx.ld, B, T, heads, pos_offset, table);
  rope_backward(Context{}, Rty.p(), Rty.ld, B, T, heads, pos_offset, table);
  const double lhs = dot(Rx.dense(), y.dense()), rhs = dot(x.dense(), Rty.dense());
  double scale = 0;
  for (size_t i = 0; i < x.numel(); ++i) scale += std::fabs(x.at(i)) * (std::fabs(y.at(i)) + 1);
  // Both sides differ from the exact <Rx, y> only by float rounding of the
  // rotated elements (~4 * 2^-24 relative each) summed over the elements.
  EXPECT_NEAR(lhs, rhs, 8 * 0x1p-24 * scale);
  // R^T R = I up to the same rounding.
  rope_backward(Context{}, Rx.p(), Rx.ld, B, T, heads, pos_offset, table);
  for (size_t i = 0; i < x.numel(); ++i) EXPECT_NEAR(Rx.at(i), x.at(i), 1e-6 * (1 + std::fabs(x.at(i)))) << i;
  EXPECT_TRUE(Rx.padding_untouched() && Rty.padding_untouched());
}

TEST(Rope, RejectsBadArguments) {
  EXPECT_THROW(RopeTable(7, 10000.0, 0, 4), Error);  // odd head_dim
  const RopeTable table(8, 10000.0, 4, 4);
  std::vector<float> x(64);
  EXPECT_THROW(rope_forward(Context{}, x.data(), 8, 1, 4, 1, 0, table), Error);  // positions 0..3 not in [4, 8)
  EXPECT_THROW(rope_forward(Context{}, x.data(), 8, 1, 4, 1, 5, table), Error);  // 5..8 not in [4, 8)
  EXPECT_THROW(rope_forward(Context{}, x.data(), 4, 1, 4, 1, 4, table), Error);  // stride < head_dim
}

// ---- kernel forward ------------------------------------------------------------

// Attention output and lse in float32 vs float64. Scores are O(1)
// (unit-normal q, k, scaled by 1/sqrt(d)); a float score is off by
// ~sqrt(d) * 2^-24 * |q||k| / sqrt(d) ~ 1e-6, which becomes the same relative
// error in the probabilities and ~1e-6 * max|v| in o. Measured max 2.5e-6
// (d = 32, 130 keys, and the large-logit case below at 10x): 2e-5 is 8x that.
const double kFwdTol = 2e-5;

void expect_forward_matches_reference(KernelRun& r, double tol) {
  r.forward();
  std::vector<double> ref_lse;
  const auto want = ref_attention(r.a, r.q.dense(), r.k.dense(), r.v.dense(), &ref_lse);
  for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(r.o.at(i), want[i], tol) << "o index " << i;
  for (size_t i = 0; i < ref_lse.size(); ++i)
    ASSERT_NEAR(r.lse[i], ref_lse[i], tol * (1 + std::fabs(ref_lse[i]))) << "lse index " << i;
  EXPECT_TRUE(r.o.padding_untouched());
}

TEST(SoftmaxAttentionKernel, ForwardMatchesFloat64Reference) {
  // (B, T, H, KVH, d, q_block): T = 1, T not a multiple of the block, T an
  // exact multiple, GQA groups of 2 and 4, MHA, several blocks per sequence.
  const int cases[][6] = {{1, 1, 1, 1, 4, 64},  {2, 37, 4, 2, 8, 64},  {1, 130, 2, 1, 16, 64},
                          {2, 64, 3, 3, 8, 64}, {1, 70, 8, 2, 32, 16}, {3, 130, 4, 1, 8, 64}};
  for (const auto& c : cases) {
    SCOPED_TRACE(testing::Message() << "B=" << c[0] << " T=" << c[1] << " H=" << c[2] << " KVH=" << c[3]
                                    << " d=" << c[4] << " q_block=" << c[5]);
    KernelRun r(dims(c[0], c[1], c[2], c[3], c[4], c[5]), 100 + c[1], 3);
    expect_forward_matches_reference(r, kFwdTol);
  }
}

TEST(SoftmaxAttentionKernel, LargeLogitsStayFinite) {
  // q, k scaled by 8: scores up to ~100, near one-hot rows; exp would overflow
  // without the max subtraction. Score error grows with |s| (~100 * 1e-7),
  // so the tolerance is 10x kFwdTol.
  KernelRun r(dims(2, 50, 2, 1, 16, 16), 9, 0, 8.0);
  expect_forward_matches_reference(r, 10 * kFwdTol);
}

TEST(SoftmaxAttentionKernel, QueryChunksMatchTheFullComputation) {
  // LASP-2H: each rank runs its chunk of queries (q_offset = chunk start)
  // against all keys. Its o and dq must equal the full computation's rows; its
  // dK, dV cover all keys (exactly 0 after the chunk: no query sees them), and
  // summed over the ranks (the reduce-scatter) they equal the full dK, dV.
  const int B = 2, Tk = 100, H = 4, KVH = 2, d = 8;
  const size_t W = static_cast<size_t>(H) * d, Wk = static_cast<size_t>(KVH) * d;
  KernelRun full(dims(B, Tk, H, KVH, d), 21, 1);
  full.forward();
  full.backward();
  const auto full_o = ref_attention(full.a, full.q.dense(), full.k.dense(), full.v.dense());
  std::vector<double> dk_sum(full.dk.numel(), 0.0), dv_sum(full.dv.numel(), 0.0);
  for (const auto& [q_offset, Tq] : {std::pair{0, 30}, {30, 40}, {70, 30}}) {
    SCOPED_TRACE(testing::Message() << "q_offset=" << q_offset << " Tq=" << Tq);
    KernelRun chunk({B, Tq, Tk, H, KVH, d, q_offset, 16}, 0, 2);
    chunk.k = full.k, chunk.v = full.v;
    auto src = [&](size_t dst) { return ((dst / W) / Tq * Tk + q_offset + (dst / W) % Tq) * W + dst % W; };
    for (size_t i = 0; i < chunk.q.numel(); ++i) {
      chunk.q.at(i) = full.q.at(src(i));
      chunk.dout.at(i) = full.dout.at(src(i));
    }
    chunk.forward();
    chunk.backward();
    for (size_t i = 0; i < chunk.o.numel(); ++i) {
      ASSERT_NEAR(chunk.o.at(i), full_o[src(i)], kFwdTol) << i;
      // Same float computation with differently shaped tiles: only the
      // summation order differs, a few ulps of O(1) values (measured 1.2e-7
      // for o, 2.4e-7 for dq).
      ASSERT_NEAR(chunk.o.at(i), full.o.at(src(i)), 1e-6) << i;
      ASSERT_NEAR(chunk.dq.at(i), full.dq.at(src(i)), 2e-6) << i;
    }
    for (size_t i = 0; i < dk_sum.size(); ++i) {
      dk_sum[i] += chunk.dk.at(i), dv_sum[i] += chunk.dv.at(i);
      if (static_cast<int>((i / Wk) % Tk) >= q_offset + Tq) {
        ASSERT_EQ(chunk.dk.at(i), 0.0f) << i;
        ASSERT_EQ(chunk.dv.at(i), 0.0f) << i;
      }
    }
  }
  // Float sums of the same terms in another grouping: a few ulps of O(1)
  // gradients (measured 3e-7).
  for (size_t i = 0; i < dk_sum.size(); ++i) {
    ASSERT_NEAR(dk_sum[i], full.dk.at(i), 3e-6) << i;
    ASSERT_NEAR(dv_sum[i], full.dv.at(i), 3e-6) << i;
  }
}

// ---- kernel backward -----------------------------------------------------------

// float32 analytic gradients vs float64 finite differences (whose own error
// is ~1e-8, see central_difference). The gradients chain two float GEMMs and
// the softmax Jacobian on O(1) values: measured max 3.5e-7 * (1 + |g|) for the
// kernel and 2.7e-7 * (1 + |g|) through the layer. 1e-5 keeps ~30x margin and
// still flags any wrong or missing term (those are O(0.01..1)).
const double kGradTol = 1e-5;

TEST(SoftmaxAttentionKernel, BackwardMatchesFiniteDifferences) {
  // {B, Tq, Tk, H, KVH, d, q_offset, q_block}: all coordinates of a tiny case;
  // sampled coordinates of GQA with several blocks and a partial last block;
  // a chunk with q_offset and unseen trailing keys.
  const AttentionDims cases[] = {{1, 5, 5, 2, 1, 4, 0, 2}, {2, 37, 37, 4, 2, 8, 0, 16}, {1, 20, 45, 2, 2, 8, 20, 8}};
  for (const auto& a : cases) {
    SCOPED_TRACE(testing::Message() << "Tq=" << a.Tq << " Tk=" << a.Tk << " H=" << a.H << " KVH=" << a.KVH);
    KernelRun r(a, 77 + a.Tq, 1);
    r.forward();
    r.backward();
    std::vector<double> q = r.q.dense(), k = r.k.dense(), v = r.v.dense();
    const std::vector<double> dout = r.dout.dense();
    auto loss = [&] { return dot(dout, ref_attention(a, q, k, v)); };
    Rng pick(3);
    const std::pair<std::vector<double>*, const Act*> pairs[] = {{&q, &r.dq}, {&k, &r.dk}, {&v, &r.dv}};
    for (const auto& [x, grad] : pairs) {
      EXPECT_TRUE(grad->padding_untouched());
      for (size_t i : sample(x->size(), 150, pick)) {
        const double fd = central_difference(*x, i, loss);
        ASSERT_NEAR(grad->at(i), fd, kGradTol * (1 + std::fabs(fd))) << "index " << i;
      }
    }
  }
}

// ---- causality and determinism ----------------------------------------------------

TEST(SoftmaxAttentionKernel, FutureTokensDoNotChangeEarlierOutputs) {
  const AttentionDims a = dims(2, 100, 4, 2, 8, 32);
  KernelRun base(a, 8, 1);
  base.forward();
  base.backward();
  for (int t0 : {1, 31, 32, 63, 99}) {
    KernelRun r = base;
    Rng rng(t0);
    for (int b = 0; b < a.B; ++b) {  // new q, k, v and dout for token t0 of each sequence
      for (int c = 0; c < a.H * a.d; ++c)
        for (Act* x : {&r.q, &r.dout}) x->at((static_cast<size_t>(b) * a.Tq + t0) * a.H * a.d + c) = rng.normal();
      for (int c = 0; c < a.KVH * a.d; ++c)
        for (Act* x : {&r.k, &r.v}) x->at((static_cast<size_t>(b) * a.Tk + t0) * a.KVH * a.d + c) = rng.normal();
    }
    r.forward();
    r.backward();
    bool later_changed = false;
    for (int b = 0; b < a.B; ++b)
      for (int t = 0; t < a.Tq; ++t) {
        const size_t row = (static_cast<size_t>(b) * a.Tq + t) * r.o.ld;
        const bool same_o = std::memcmp(&r.o.buf[row], &base.o.buf[row], a.H * a.d * sizeof(float)) == 0;
        const size_t drow = (static_cast<size_t>(b) * a.Tq + t) * r.dq.ld;
        const bool same_dq = std::memcmp(&r.dq.buf[drow], &base.dq.buf[drow], a.H * a.d * sizeof(float)) == 0;
        // Exactly: masked probabilities are 0, and 0 * finite adds nothing.
        if (t < t0) {
          EXPECT_TRUE(same_o && same_dq) << "t0 " << t0 << " b " << b << " t " << t;
        }
        if (t >= t0 && !same_o) later_changed = true;
      }
    EXPECT_TRUE(later_changed) << "the perturbation reached no output (test is vacuous)";
  }
}

TEST(SoftmaxAttentionKernel, BitReproducibleAcrossRunsAndThreadCounts) {
  const int saved_threads = num_threads();
  const AttentionDims a{2, 70, 90, 4, 2, 16, 20, 32};
  std::vector<std::vector<float>> results;
  for (int threads : {2, 2, 1, 3}) {
    set_num_threads(threads);
    KernelRun r(a, 4, 1);
    r.forward();
    r.backward();
    results.push_back(r.all_outputs());
  }
  set_num_threads(saved_threads);
  for (size_t i = 1; i < results.size(); ++i) EXPECT_TRUE(bitwise_equal(results[0], results[i])) << "run " << i;
}

TEST(SoftmaxAttentionKernel, RejectsBadShapes) {
  std::vector<float> buf(4096);
  float* p = buf.data();
  auto fwd = [&](AttentionDims a, int ld) {
    softmax_attention_forward(cpu_context(softmax_attention_forward_scratch_bytes(Device::CPU, a)), a, p, ld, p, p,
                              ld, p, ld, p, ld);
  };
  EXPECT_THROW(fwd({1, 4, 4, 3, 2, 8, 0, 64}, 24), Error);   // H not a multiple of KVH
  EXPECT_THROW(fwd({1, 4, 6, 2, 1, 8, 3, 64}, 16), Error);   // Tk < q_offset + Tq
  EXPECT_THROW(fwd({1, 4, 4, 2, 1, 8, 0, 64}, 15), Error);   // stride < H*d
  EXPECT_THROW(fwd({1, 4, 4, 2, 1, 8, 0, 0}, 16), Error);    // q_block 0
}

// ---- the layer core ------------------------------------------------------------

ModelConfig layer_config() {
  ModelConfig cfg;
  cfg.hidden_size = 32;
  cfg.num_attention_heads = 4;
  cfg.num_key_value_heads = 2;  // d = 8, GQA group of 2
  cfg.rope_theta = 10000.0;
  return cfg;
}

TEST(SoftmaxAttentionCore, ForwardMatchesFloat64Layer) {
  const ModelConfig cfg = layer_config();
  const int B = 2, T = 70;
  SoftmaxAttentionCore core(cpu_context(), cfg, B, T);
  EXPECT_EQ(core.qkv_width(), 64);
  // qkv_rot (N, 64) + o (N, 32) + lse (B, H, T) + RoPE table (T, d), in floats.
  EXPECT_EQ(core.saved_bytes(), sizeof(float) * (B * T * (64 + 32) + B * 4 * T + T * 8));
  Act qkv(B * T, core.qkv_width(), 0), out(B * T, core.out_width(), 0);
  Rng rng(2);
  qkv.randn(rng);
  const Act qkv_before = qkv;
  for (int pos_offset : {0, 1000, 0}) {
    core.forward(out.p(), qkv.p(), pos_offset);
    const auto want = ref_layer(cfg, B, T, pos_offset, qkv.dense());
    // RoPE adds ~1e-7 relative error to q, k before the kernel: within kFwdTol.
    for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(out.at(i), want[i], kFwdTol) << pos_offset << " " << i;
  }
  EXPECT_TRUE(bitwise_equal(qkv.buf, qkv_before.buf)) << "forward must not modify its input";
}

TEST(SoftmaxAttentionCore, BackwardMatchesFiniteDifferencesThroughRope) {
  const ModelConfig cfg = layer_config();
  const int B = 2, T = 70, pos_offset = 5;  // two query blocks of the default 64
  SoftmaxAttentionCore core(cpu_context(), cfg, B, T);
  Act qkv(B * T, core.qkv_width(), 0), out(B * T, core.out_width(), 0), dout = out, dqkv = qkv;
  Rng rng(12);
  qkv.randn(rng), dout.randn(rng);
  std::fill(dqkv.buf.begin(), dqkv.buf.end(), kNaN);  // must be assigned in full
  core.forward(out.p(), qkv.p(), pos_offset);
  core.backward(dqkv.p(), dout.p());
  std::vector<double> x = qkv.dense();
  const std::vector<double> g = dout.dense();
  auto loss = [&] { return dot(g, ref_layer(cfg, B, T, pos_offset, x)); };
  Rng pick(4);
  for (size_t i : sample(x.size(), 300, pick)) {
    const double fd = central_difference(x, i, loss);
    ASSERT_NEAR(dqkv.at(i), fd, kGradTol * (1 + std::fabs(fd))) << "qkv index " << i << " column "
                                                                  << i % core.qkv_width();
  }
  for (float v : dqkv.buf) ASSERT_FALSE(std::isnan(v));
}

TEST(SoftmaxAttentionCore, CausalAndBitReproducible) {
  const ModelConfig cfg = layer_config();
  const int B = 1, T = 80, t0 = 50;
  SoftmaxAttentionCore core(cpu_context(), cfg, B, T);
  Act qkv(B * T, core.qkv_width(), 0), dout(B * T, core.out_width(), 0);
  Rng rng(6);
  qkv.randn(rng), dout.randn(rng);
  auto run = [&](const Act& input) {
    Act out(B * T, core.out_width(), 0), dqkv(B * T, core.qkv_width(), 0);
    core.forward(out.p(), input.buf.data(), 3);
    core.backward(dqkv.p(), dout.p());
    std::vector<float> all = out.buf;
    all.insert(all.end(), dqkv.buf.begin(), dqkv.buf.end());
    return all;
  };
  const auto first = run(qkv), second = run(qkv);
  EXPECT_TRUE(bitwise_equal(first, second));
  Act later = qkv;
  for (int c = 0; c < core.qkv_width(); ++c) later.at(static_cast<size_t>(t0) * core.qkv_width() + c) += 1.0f;
  const auto perturbed = run(later);
  const size_t before = static_cast<size_t>(t0) * core.out_width();  // outputs of tokens < t0
  EXPECT_EQ(std::memcmp(first.data(), perturbed.data(), before * sizeof(float)), 0);
  EXPECT_NE(std::memcmp(first.data(), perturbed.data(), B * T * core.out_width() * sizeof(float)), 0);
}

TEST(SoftmaxAttentionCore, RejectsBadConfigAndOrder) {
  ModelConfig cfg = layer_config();
  cfg.num_key_value_heads = 3;
  EXPECT_THROW(SoftmaxAttentionCore(cpu_context(), cfg, 1, 4), Error);  // 4 heads, 3 kv heads
  cfg = layer_config();
  cfg.hidden_size = 36;  // head_dim 9: odd
  EXPECT_THROW(SoftmaxAttentionCore(cpu_context(), cfg, 1, 4), Error);
  SoftmaxAttentionCore core(cpu_context(), layer_config(), 1, 4);
  std::vector<float> dqkv(4 * 64), dout(4 * 32);
  EXPECT_THROW(core.backward(dqkv.data(), dout.data()), Error);  // no forward yet
}
