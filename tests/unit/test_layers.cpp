// Linear, embedding, RMSNorm, SwiGLU and chunked cross-entropy: fp32 forward
// against float64 references written here, fp32 backward against central
// finite differences of those float64 references.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <vector>

#include "layers/cross_entropy.h"
#include "layers/linear.h"
#include "runtime/error.h"
#include "runtime/ops.h"
#include "runtime/rng.h"

using namespace lintrain;
using Vec = std::vector<double>;

namespace {

std::vector<float> randn(size_t n, Rng& rng, double scale = 1.0) {
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(rng.normal() * scale);
  return v;
}
Vec to_d(const std::vector<float>& v) { return Vec(v.begin(), v.end()); }

// A CPU context whose arena holds what these small ops need.
struct CpuContext {
  Arena arena;
  Context ctx;
  CpuContext() {
    arena.reserve(1 << 20);
    ctx.scratch = &arena;
  }
};

// Gradient of f (float64) at x by central differences. h = 1e-6 balances
// truncation (~h^2 * f''' ~ 1e-12) against roundoff (~1e-16 / h ~ 1e-10).
Vec fd_grad(const std::function<double(const Vec&)>& f, Vec x) {
  Vec g(x.size());
  const double h = 1e-6;
  for (size_t i = 0; i < x.size(); ++i) {
    const double x0 = x[i];
    x[i] = x0 + h;
    const double fp = f(x);
    x[i] = x0 - h;
    const double fm = f(x);
    x[i] = x0;
    g[i] = (fp - fm) / (2 * h);
  }
  return g;
}

// max |a - b| / (1 + max |b|): error relative to the scale of the reference.
double rel_err(const std::vector<float>& a, const Vec& b) {
  double m = 0, s = 0;
  for (size_t i = 0; i < b.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i])), s = std::max(s, std::fabs(b[i]));
  return m / (1 + s);
}

double dot(const Vec& a, const Vec& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// fp32 results of O(C)-term sums carry ~C * 2^-24 relative error; with C <= 64
// and unit-scale data 1e-5 leaves an order of magnitude of headroom.
constexpr double kTol = 1e-5;

}  // namespace

TEST(Linear, ForwardBackwardMatchFloat64) {
  Rng rng(1);
  const int N = 7, C = 11, OC = 5;
  auto x = randn(N * C, rng), w = randn(OC * C, rng), dy = randn(N * OC, rng);
  auto ref = [&](const Vec& xd, const Vec& wd) {
    Vec y(N * OC, 0.0);
    for (int n = 0; n < N; ++n)
      for (int o = 0; o < OC; ++o)
        for (int c = 0; c < C; ++c) y[n * OC + o] += xd[n * C + c] * wd[o * C + c];
    return y;
  };
  std::vector<float> y(N * OC), dx(N * C), dw(OC * C, 0.5f);
  linear_forward(Context{}, GemmPrecision::fp32, y.data(), x.data(), w.data(), N, C, OC);
  EXPECT_LT(rel_err(y, ref(to_d(x), to_d(w))), kTol);
  linear_backward(Context{}, GemmPrecision::fp32, dx.data(), dw.data(), dy.data(), x.data(), w.data(), N, C, OC);
  const Vec dyd = to_d(dy);
  EXPECT_LT(rel_err(dx, fd_grad([&](const Vec& xd) { return dot(ref(xd, to_d(w)), dyd); }, to_d(x))), kTol);
  Vec gw = fd_grad([&](const Vec& wd) { return dot(ref(to_d(x), wd), dyd); }, to_d(w));
  for (auto& g : gw) g += 0.5;  // dweight accumulates onto its previous value
  EXPECT_LT(rel_err(dw, gw), kTol);
}

TEST(Embedding, GathersAndScattersRows) {
  CpuContext cpu;
  Rng rng(2);
  const int V = 9, C = 70, N = 12;  // C > 64 crosses a column-slice boundary
  auto wte = randn(V * C, rng), dy = randn(N * C, rng);
  std::vector<int32_t> tok(N);
  for (auto& t : tok) t = static_cast<int32_t>(rng.below(V));
  tok[3] = tok[7];  // a repeated token must accumulate
  std::vector<float> y(N * C), dwte(V * C, 0.0f);
  embedding_forward(cpu.ctx, y.data(), tok.data(), wte.data(), N, C, V);
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c) ASSERT_EQ(y[n * C + c], wte[tok[n] * C + c]);
  embedding_backward(cpu.ctx, dwte.data(), dy.data(), tok.data(), N, C);
  Vec want(V * C, 0.0);
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c) want[tok[n] * C + c] += dy[n * C + c];
  EXPECT_LT(rel_err(dwte, want), 1e-6);  // at most two fp32 additions per entry
  tok[0] = V;
  EXPECT_THROW(embedding_forward(cpu.ctx, y.data(), tok.data(), wte.data(), N, C, V), Error);
}

TEST(RMSNorm, ForwardBackwardMatchFloat64) {
  CpuContext cpu;
  Rng rng(3);
  const int N = 6, C = 13;
  const float eps = 1e-5f;
  auto x = randn(N * C, rng, 2.0), w = randn(C, rng), dy = randn(N * C, rng);
  auto ref = [&](const Vec& xd, const Vec& wd) {
    Vec y(N * C);
    for (int n = 0; n < N; ++n) {
      double ss = 0;
      for (int c = 0; c < C; ++c) ss += xd[n * C + c] * xd[n * C + c];
      const double r = 1 / std::sqrt(ss / C + eps);
      for (int c = 0; c < C; ++c) y[n * C + c] = xd[n * C + c] * r * wd[c];
    }
    return y;
  };
  std::vector<float> y(N * C), rstd(N), dx(N * C, 0.25f), dw(C, 0.0f);
  rmsnorm_forward(cpu.ctx, y.data(), rstd.data(), x.data(), w.data(), N, C, eps);
  EXPECT_LT(rel_err(y, ref(to_d(x), to_d(w))), kTol);
  rmsnorm_backward(cpu.ctx, dx.data(), dw.data(), dy.data(), x.data(), w.data(), rstd.data(), N, C);
  const Vec dyd = to_d(dy);
  Vec gx = fd_grad([&](const Vec& xd) { return dot(ref(xd, to_d(w)), dyd); }, to_d(x));
  for (auto& g : gx) g += 0.25;  // dinp accumulates into the residual gradient
  EXPECT_LT(rel_err(dx, gx), kTol);
  EXPECT_LT(rel_err(dw, fd_grad([&](const Vec& wd) { return dot(ref(to_d(x), wd), dyd); }, to_d(w))), kTol);
}

TEST(SwiGLU, ForwardBackwardMatchFloat64) {
  CpuContext cpu;
  Rng rng(4);
  const int N = 5, F = 9;
  auto gu = randn(N * 2 * F, rng, 3.0), dh = randn(N * F, rng);
  auto ref = [&](const Vec& g) {
    Vec h(N * F);
    for (int n = 0; n < N; ++n)
      for (int f = 0; f < F; ++f) {
        const double a = g[n * 2 * F + f], u = g[n * 2 * F + F + f];
        h[n * F + f] = a / (1 + std::exp(-a)) * u;
      }
    return h;
  };
  std::vector<float> h(N * F), dgu(N * 2 * F);
  swiglu_forward(cpu.ctx, h.data(), gu.data(), N, F);
  EXPECT_LT(rel_err(h, ref(to_d(gu))), kTol);
  swiglu_backward(cpu.ctx, dgu.data(), dh.data(), gu.data(), N, F);
  EXPECT_LT(rel_err(dgu, fd_grad([&](const Vec& g) { return dot(ref(g), to_d(dh)); }, to_d(gu))), kTol);
}

TEST(ChunkedCrossEntropy, MatchesFullSoftmaxForEveryChunkSize) {
  Rng rng(5);
  const int N = 10, C = 8, V = 37;
  auto h = randn(N * C, rng), w = randn(V * C, rng);
  std::vector<int32_t> t(N);
  for (auto& x : t) x = static_cast<int32_t>(rng.below(V));
  t[4] = -1;  // ignored position
  const int count = N - 1;
  auto ref = [&](const Vec& hd, const Vec& wd) {
    double loss = 0;
    for (int n = 0; n < N; ++n) {
      if (t[n] < 0) continue;
      Vec z(V, 0.0);
      double m = -1e300;
      for (int v = 0; v < V; ++v) {
        for (int c = 0; c < C; ++c) z[v] += hd[n * C + c] * wd[v * C + c];
        m = std::max(m, z[v]);
      }
      double s = 0;
      for (int v = 0; v < V; ++v) s += std::exp(z[v] - m);
      loss += m + std::log(s) - z[t[n]];
    }
    return loss / count;
  };
  const double want = ref(to_d(h), to_d(w));
  const Vec gh = fd_grad([&](const Vec& hd) { return ref(hd, to_d(w)); }, to_d(h));
  const Vec gw = fd_grad([&](const Vec& wd) { return ref(to_d(h), wd); }, to_d(w));
  for (int chunk : {1, 3, 10, 64}) {
    const Context ctx;
    ChunkedCrossEntropy ce(ctx, GemmPrecision::fp32, chunk);
    std::vector<float> dh(N * C), dw(V * C, 0.0f);
    auto st = ce.run(h.data(), w.data(), t.data(), t.data(), N, C, V, 1.0f / count, dh.data(), dw.data());
    EXPECT_EQ(st.count, count);
    EXPECT_NEAR(st.loss_sum / count, want, 1e-5 * want) << chunk;
    EXPECT_LT(rel_err(dh, gh), kTol) << chunk;
    EXPECT_LT(rel_err(dw, gw), kTol) << chunk;
    // The logits of one chunk, and each row's loss (double) and hit (int32).
    EXPECT_LE(ce.workspace_bytes(), (sizeof(float) * V + sizeof(double) + sizeof(int32_t)) * std::min(chunk, N));
  }
}
