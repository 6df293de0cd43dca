// CPU body of the LASP-2 chunk-boundary terms (see lasp2_terms.h). Each
// function walks the chunk in tiles of `block` rows: scale a tile's rows by
// their decay powers, then one gemm() against the d x d state.
#include "runtime/cpu/lasp2_terms.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "runtime/cpu/gemm.h"
#include "runtime/error.h"

namespace lintrain {

namespace {

void check_dims(const char* op, const LinearAttentionDims& m, const float* decay) {
  LT_CHECK(m.B >= 0 && m.T >= 0, "[", op, "] B and T (the chunk length) must be >= 0, got B=", m.B,
           " T=", m.T);
  LT_CHECK(m.H >= 1 && m.KVH >= 1 && m.H % m.KVH == 0 && m.d >= 1, "[", op,
           "] need H, KVH, d >= 1 and H % KVH == 0, got H=", m.H, " KVH=", m.KVH, " d=", m.d);
  LT_CHECK(m.block >= 1, "[", op, "] block must be >= 1, got ", m.block);
  LT_CHECK(m.ldq >= m.H * m.d && m.ldo >= m.H * m.d && m.ldk >= m.KVH * m.d &&
               m.ldv >= m.KVH * m.d,
           "[", op, "] row strides ldq=", m.ldq, " ldo=", m.ldo, " ldk=", m.ldk, " ldv=", m.ldv,
           " are below the head widths H*d=", m.H * m.d, ", KVH*d=", m.KVH * m.d);
  LT_CHECK(decay != nullptr, "[", op, "] decay is null; pass H values in (0, 1]");
  for (int h = 0; h < m.H; ++h)
    LT_CHECK(decay[h] > 0.0f && decay[h] <= 1.0f, "[", op, "] decay[", h, "]=", decay[h],
             " must be in (0, 1] (1 = no decay)");
}

// w[i] = lambda^(first + i), i < c, as exp(n log lambda): underflow gives 0.
void powers(double log_lambda, int first, int c, float* w) {
  for (int i = 0; i < c; ++i) w[i] = static_cast<float>(std::exp((first + i) * log_lambda));
}

// Y (c, d) = diag(w) X, X with row stride ldx; Y dense.
void scale_rows(const float* X, int ldx, const float* w, int c, int d, float* Y) {
  for (int i = 0; i < c; ++i) {
    const float* x = X + static_cast<size_t>(i) * ldx;
    float* y = Y + static_cast<size_t>(i) * d;
    for (int j = 0; j < d; ++j) y[j] = w[i] * x[j];
  }
}

// Lq powers of rows t0..t0+c-1: lambda^(t0+1) ...
void query_powers(double log_lambda, int t0, int c, float* w) { powers(log_lambda, t0 + 1, c, w); }

// Lk powers of rows t0..t0+c-1 of a chunk of C: lambda^(C-1-t0) down to lambda^(C-t0-c).
void key_powers(double log_lambda, int C, int t0, int c, float* w) {
  for (int s = 0; s < c; ++s) w[s] = static_cast<float>(std::exp((C - 1 - t0 - s) * log_lambda));
}

// Calls f(b, h, g, row0, log_lambda, scratch X, scratch w) for every (b, h) in parallel.
template <typename F>
void for_each_head(const LinearAttentionDims& m, const float* decay, F&& f) {
#pragma omp parallel
  {
    std::vector<float> X(static_cast<size_t>(m.block) * m.d), w(m.block);
#pragma omp for schedule(static)
    for (int bh = 0; bh < m.B * m.H; ++bh) {
      const int b = bh / m.H, h = bh % m.H;
      f(b, h, h / (m.H / m.KVH), static_cast<size_t>(b) * m.T,
        std::log(static_cast<double>(decay[h])), X.data(), w.data());
    }
  }
}

}  // namespace

void lasp2_chunk_state(float* M, const float* k, const float* v, const float* decay,
                       const LinearAttentionDims& m) {
  check_dims("lasp2_chunk_state", m, decay);
  const int d = m.d;
  const size_t dd = static_cast<size_t>(d) * d;
  for_each_head(m, decay, [&](int b, int h, int g, size_t row0, double ll, float* X, float* w) {
    float* Mh = M + (static_cast<size_t>(b) * m.H + h) * dd;
    std::fill(Mh, Mh + dd, 0.0f);
    const float* kh = k + row0 * m.ldk + static_cast<size_t>(g) * d;
    const float* vh = v + row0 * m.ldv + static_cast<size_t>(g) * d;
    for (int t0 = 0; t0 < m.T; t0 += m.block) {
      const int c = std::min(m.block, m.T - t0);
      key_powers(ll, m.T, t0, c, w);
      scale_rows(kh + static_cast<size_t>(t0) * m.ldk, m.ldk, w, c, d, X);
      gemm(true, false, d, d, c, 1.0f, X, d, vh + static_cast<size_t>(t0) * m.ldv, m.ldv, 1.0f,
           Mh, d);
    }
  });
}

void lasp2_add_prefix_output(float* o, const float* q, const float* P, const float* decay,
                             const LinearAttentionDims& m) {
  check_dims("lasp2_add_prefix_output", m, decay);
  const int d = m.d;
  const size_t dd = static_cast<size_t>(d) * d;
  for_each_head(m, decay, [&](int b, int h, int, size_t row0, double ll, float* X, float* w) {
    const float* Ph = P + (static_cast<size_t>(b) * m.H + h) * dd;
    const float* qh = q + row0 * m.ldq + static_cast<size_t>(h) * d;
    float* oh = o + row0 * m.ldo + static_cast<size_t>(h) * d;
    for (int t0 = 0; t0 < m.T; t0 += m.block) {
      const int c = std::min(m.block, m.T - t0);
      query_powers(ll, t0, c, w);
      scale_rows(qh + static_cast<size_t>(t0) * m.ldq, m.ldq, w, c, d, X);
      gemm(false, false, c, d, d, 1.0f, X, d, Ph, d, 1.0f, oh + static_cast<size_t>(t0) * m.ldo,
           m.ldo);
    }
  });
}

void lasp2_prefix_state_grad(float* dP, const float* q, const float* dout, const float* decay,
                             const LinearAttentionDims& m) {
  check_dims("lasp2_prefix_state_grad", m, decay);
  const int d = m.d;
  const size_t dd = static_cast<size_t>(d) * d;
  for_each_head(m, decay, [&](int b, int h, int, size_t row0, double ll, float* X, float* w) {
    float* dPh = dP + (static_cast<size_t>(b) * m.H + h) * dd;
    std::fill(dPh, dPh + dd, 0.0f);
    const float* qh = q + row0 * m.ldq + static_cast<size_t>(h) * d;
    const float* doh = dout + row0 * m.ldo + static_cast<size_t>(h) * d;
    for (int t0 = 0; t0 < m.T; t0 += m.block) {
      const int c = std::min(m.block, m.T - t0);
      query_powers(ll, t0, c, w);
      scale_rows(qh + static_cast<size_t>(t0) * m.ldq, m.ldq, w, c, d, X);
      gemm(true, false, d, d, c, 1.0f, X, d, doh + static_cast<size_t>(t0) * m.ldo, m.ldo, 1.0f,
           dPh, d);
    }
  });
}

void lasp2_add_prefix_dq(float* dq, const float* dout, const float* P, const float* decay,
                         const LinearAttentionDims& m) {
  check_dims("lasp2_add_prefix_dq", m, decay);
  const int d = m.d;
  const size_t dd = static_cast<size_t>(d) * d;
  for_each_head(m, decay, [&](int b, int h, int, size_t row0, double ll, float* X, float* w) {
    const float* Ph = P + (static_cast<size_t>(b) * m.H + h) * dd;
    const float* doh = dout + row0 * m.ldo + static_cast<size_t>(h) * d;
    float* dqh = dq + row0 * m.ldq + static_cast<size_t>(h) * d;
    for (int t0 = 0; t0 < m.T; t0 += m.block) {
      const int c = std::min(m.block, m.T - t0);
      query_powers(ll, t0, c, w);  // Lq * (dO P^T) = (Lq * dO) P^T
      scale_rows(doh + static_cast<size_t>(t0) * m.ldo, m.ldo, w, c, d, X);
      gemm(false, true, c, d, d, 1.0f, X, d, Ph, d, 1.0f, dqh + static_cast<size_t>(t0) * m.ldq,
           m.ldq);
    }
  });
}

void lasp2_add_suffix_dkdv(float* dk, float* dv, const float* k, const float* v, const float* G,
                           const float* decay, const LinearAttentionDims& m) {
  check_dims("lasp2_add_suffix_dkdv", m, decay);
  const int d = m.d, group = m.H / m.KVH;
  const size_t dd = static_cast<size_t>(d) * d;
  // Over (b, kv head): the group's query heads add into one dk/dv slice in a
  // fixed order on one thread (no races, deterministic sums).
#pragma omp parallel
  {
    std::vector<float> X(static_cast<size_t>(m.block) * d), w(m.block);
#pragma omp for schedule(static)
    for (int bg = 0; bg < m.B * m.KVH; ++bg) {
      const int b = bg / m.KVH, g = bg % m.KVH;
      const size_t row0 = static_cast<size_t>(b) * m.T;
      const float* kh = k + row0 * m.ldk + static_cast<size_t>(g) * d;
      const float* vh = v + row0 * m.ldv + static_cast<size_t>(g) * d;
      float* dkh = dk + row0 * m.ldk + static_cast<size_t>(g) * d;
      float* dvh = dv + row0 * m.ldv + static_cast<size_t>(g) * d;
      for (int j = 0; j < group; ++j) {
        const int h = g * group + j;
        const float* Gh = G + (static_cast<size_t>(b) * m.H + h) * dd;
        const double ll = std::log(static_cast<double>(decay[h]));
        for (int t0 = 0; t0 < m.T; t0 += m.block) {
          const int c = std::min(m.block, m.T - t0);
          key_powers(ll, m.T, t0, c, w.data());
          scale_rows(vh + static_cast<size_t>(t0) * m.ldv, m.ldv, w.data(), c, d, X.data());
          gemm(false, true, c, d, d, 1.0f, X.data(), d, Gh, d, 1.0f,
               dkh + static_cast<size_t>(t0) * m.ldk, m.ldk);
          scale_rows(kh + static_cast<size_t>(t0) * m.ldk, m.ldk, w.data(), c, d, X.data());
          gemm(false, false, c, d, d, 1.0f, X.data(), d, Gh, d, 1.0f,
               dvh + static_cast<size_t>(t0) * m.ldv, m.ldv);
        }
      }
    }
  }
}

}  // namespace lintrain
