// Float64 references for the linear-attention tests: the plain token-by-token
// recurrence (no blocks, no decay powers, no GEMM), so the blockwise kernel is
// checked against the definition and not against a rearrangement of itself.
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

#include "runtime/rng.h"

namespace lintrain::test {

using Vec = std::vector<double>;

struct RefShape {
  int B, T, H, KVH, d;
};

// Dense layouts: q (B,T,H,d), k and v (B,T,KVH,d), o (B,T,H,d), states (B,H,d,d).
//   S_t = lambda_h S_{t-1} + k_t^T v_t,  o_t = q_t S_t,  S_0 = state_in (or 0).
inline void ref_recurrence(const RefShape& s, const Vec& q, const Vec& k, const Vec& v,
                           const Vec& decay, const double* state_in, Vec& o, Vec* state_out) {
  const int d = s.d, G = s.H / s.KVH;
  o.assign(static_cast<size_t>(s.B) * s.T * s.H * d, 0.0);
  if (state_out) state_out->assign(static_cast<size_t>(s.B) * s.H * d * d, 0.0);
  Vec S(static_cast<size_t>(d) * d);
  for (int b = 0; b < s.B; ++b)
    for (int h = 0; h < s.H; ++h) {
      const int g = h / G;
      const size_t bh = static_cast<size_t>(b) * s.H + h;
      for (size_t i = 0; i < S.size(); ++i) S[i] = state_in ? state_in[bh * d * d + i] : 0.0;
      for (int t = 0; t < s.T; ++t) {
        const size_t row = static_cast<size_t>(b) * s.T + t;
        const double* kt = &k[(row * s.KVH + g) * d];
        const double* vt = &v[(row * s.KVH + g) * d];
        const double* qt = &q[(row * s.H + h) * d];
        for (int i = 0; i < d; ++i)
          for (int j = 0; j < d; ++j) S[i * d + j] = decay[h] * S[i * d + j] + kt[i] * vt[j];
        double* ot = &o[(row * s.H + h) * d];
        for (int j = 0; j < d; ++j) {
          double acc = 0.0;
          for (int i = 0; i < d; ++i) acc += qt[i] * S[i * d + j];
          ot[j] = acc;
        }
      }
      if (state_out) std::copy(S.begin(), S.end(), state_out->begin() + bh * d * d);
    }
}

inline double dot(const Vec& a, const Vec& b) {
  double acc = 0.0;
  for (size_t i = 0; i < a.size(); ++i) acc += a[i] * b[i];
  return acc;
}

inline Vec randn(Rng& rng, size_t n, double scale = 1.0) {
  Vec x(n);
  for (auto& e : x) e = scale * rng.normal();
  return x;
}

// Values rounded to fp32 and back: the references run on exactly the numbers
// the fp32 code sees, so only the computation's rounding is measured.
inline Vec round_f32(Vec x) {
  for (auto& e : x) e = static_cast<float>(e);
  return x;
}

// Normalised max error: max |got - ref| / max |ref| (ggml-style, so one
// tolerance fits outputs of any magnitude). ref all zero -> max |got|.
template <typename T>
double norm_err(const T* got, const Vec& ref) {
  double err = 0.0, mag = 0.0;
  for (size_t i = 0; i < ref.size(); ++i) {
    err = std::max(err, std::abs(static_cast<double>(got[i]) - ref[i]));
    mag = std::max(mag, std::abs(ref[i]));
  }
  return mag > 0.0 ? err / mag : err;
}

// Central differences of the float64 function f() over every element of x.
template <typename F>
Vec fd_grad(Vec& x, F&& f, double h = 1e-6) {
  Vec g(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double x0 = x[i];
    x[i] = x0 + h;
    const double fp = f();
    x[i] = x0 - h;
    const double fm = f();
    x[i] = x0;
    g[i] = (fp - fm) / (2.0 * h);
  }
  return g;
}

}  // namespace lintrain::test
