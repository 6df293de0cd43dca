// CPU bodies of the LASP-2 chunk-boundary terms and state merges (the ops:
// runtime/ops.h). Each term walks the chunk in tiles of `block` rows: scale a
// tile's rows by their decay powers, then one gemm() against the d x d state.
// Each thread's tile buffers are its slice of the scratch arena.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "runtime/arena.h"
#include "runtime/backend.h"
#include "runtime/cpu/gemm.h"

namespace lintrain::cpu {

namespace {

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

// One thread's tile buffers: X (block, d) and w (block), each 64-byte aligned.
size_t x_floats(const LinearAttentionDims& m) {
  return arena_round(static_cast<size_t>(m.block) * m.d * sizeof(float)) / sizeof(float);
}
size_t slice_floats(const LinearAttentionDims& m) {
  return x_floats(m) + arena_round(static_cast<size_t>(m.block) * sizeof(float)) / sizeof(float);
}

// The calling thread's X and w, from `slices` (one slice per thread).
void thread_tiles(float* slices, const LinearAttentionDims& m, float** X, float** w) {
  *X = slices + omp_get_thread_num() * slice_floats(m);
  *w = *X + x_floats(m);
}

// Calls f(b, h, g, row0, log_lambda, scratch X, scratch w) for every (b, h) in parallel.
template <typename F>
void for_each_head(Arena& arena, const char* op, const LinearAttentionDims& m, const float* decay, F&& f) {
  const int nthreads = omp_get_max_threads();
  ScratchScope scratch(arena);
  float* slices = scratch.take<float>(nthreads * slice_floats(m), op);
#pragma omp parallel num_threads(nthreads)
  {
    float *X, *w;
    thread_tiles(slices, m, &X, &w);
#pragma omp for schedule(static)
    for (int bh = 0; bh < m.B * m.H; ++bh) {
      const int b = bh / m.H, h = bh % m.H;
      f(b, h, h / (m.H / m.KVH), static_cast<size_t>(b) * m.T,
        std::log(static_cast<double>(decay[h])), X, w);
    }
  }
}

}  // namespace

size_t lasp2_terms_scratch_bytes(const LinearAttentionDims& m) {
  return static_cast<size_t>(omp_get_max_threads()) * slice_floats(m) * sizeof(float);
}

void lasp2_chunk_state(Arena& arena, float* M, const float* k, const float* v, const float* decay,
                       const LinearAttentionDims& m) {
  const int d = m.d;
  const size_t dd = static_cast<size_t>(d) * d;
  for_each_head(arena, "lasp2_chunk_state", m, decay,
                [&](int b, int h, int g, size_t row0, double ll, float* X, float* w) {
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

void lasp2_add_prefix_output(Arena& arena, float* o, const float* q, const float* P, const float* decay,
                             const LinearAttentionDims& m) {
  const int d = m.d;
  const size_t dd = static_cast<size_t>(d) * d;
  for_each_head(arena, "lasp2_add_prefix_output", m, decay,
                [&](int b, int h, int, size_t row0, double ll, float* X, float* w) {
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

void lasp2_prefix_state_grad(Arena& arena, float* dP, const float* q, const float* dout, const float* decay,
                             const LinearAttentionDims& m) {
  const int d = m.d;
  const size_t dd = static_cast<size_t>(d) * d;
  for_each_head(arena, "lasp2_prefix_state_grad", m, decay,
                [&](int b, int h, int, size_t row0, double ll, float* X, float* w) {
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

void lasp2_add_prefix_dq(Arena& arena, float* dq, const float* dout, const float* P, const float* decay,
                         const LinearAttentionDims& m) {
  const int d = m.d;
  const size_t dd = static_cast<size_t>(d) * d;
  for_each_head(arena, "lasp2_add_prefix_dq", m, decay,
                [&](int b, int h, int, size_t row0, double ll, float* X, float* w) {
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

void lasp2_add_suffix_dkdv(Arena& arena, float* dk, float* dv, const float* k, const float* v, const float* G,
                           const float* decay, const LinearAttentionDims& m) {
  const int d = m.d, group = m.H / m.KVH;
  const size_t dd = static_cast<size_t>(d) * d;
  const int nthreads = omp_get_max_threads();
  ScratchScope scratch(arena);
  float* slices = scratch.take<float>(nthreads * slice_floats(m), "lasp2_add_suffix_dkdv");
  // Over (b, kv head): the group's query heads add into one dk/dv slice in a
  // fixed order on one thread (no races, deterministic sums).
#pragma omp parallel num_threads(nthreads)
  {
    float *X, *w;
    thread_tiles(slices, m, &X, &w);
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
          key_powers(ll, m.T, t0, c, w);
          scale_rows(vh + static_cast<size_t>(t0) * m.ldv, m.ldv, w, c, d, X);
          gemm(false, true, c, d, d, 1.0f, X, d, Gh, d, 1.0f,
               dkh + static_cast<size_t>(t0) * m.ldk, m.ldk);
          scale_rows(kh + static_cast<size_t>(t0) * m.ldk, m.ldk, w, c, d, X);
          gemm(false, false, c, d, d, 1.0f, X, d, Gh, d, 1.0f,
               dvh + static_cast<size_t>(t0) * m.ldv, m.ldv);
        }
      }
    }
  }
}

// out[b,h] = sum over u of lambda_h^(C * n(u)) gathered[u][b,h], the terms in
// increasing u, summed in double (each thread's accumulator: its arena slice).
void lasp2_merge_states(Arena& arena, float* out, const float* gathered, int W, int j, bool suffix, int B, int H,
                        int d, int C, const float* decay) {
  const int u0 = suffix ? j + 1 : 0, u1 = suffix ? W : j;
  const size_t dd = static_cast<size_t>(d) * d, per_rank = static_cast<size_t>(B) * H * dd;
  const size_t slice = arena_round(dd * sizeof(double)) / sizeof(double);
  const int nthreads = omp_get_max_threads();
  ScratchScope scratch(arena);
  double* slices = scratch.take<double>(nthreads * slice, suffix ? "lasp2_suffix_states" : "lasp2_prefix_states");
#pragma omp parallel for schedule(static) num_threads(nthreads)
  for (int bh = 0; bh < B * H; ++bh) {
    const int h = bh % H;
    const double log_lambda = std::log(static_cast<double>(decay[h]));
    double* acc = slices + omp_get_thread_num() * slice;
    std::fill(acc, acc + dd, 0.0);
    for (int u = u0; u < u1; ++u) {
      const int n = suffix ? u - 1 - j : j - 1 - u;
      const double w = std::exp(static_cast<double>(C) * n * log_lambda);
      if (w == 0.0) continue;  // underflow: the term is exactly zero
      const float* src = gathered + u * per_rank + static_cast<size_t>(bh) * dd;
      for (size_t i = 0; i < dd; ++i) acc[i] += w * src[i];
    }
    float* dst = out + static_cast<size_t>(bh) * dd;
    for (size_t i = 0; i < dd; ++i) dst[i] = static_cast<float>(acc[i]);
  }
}

size_t lasp2_merge_states_scratch_bytes(int, int, int d) {
  return static_cast<size_t>(omp_get_max_threads()) * arena_round(static_cast<size_t>(d) * d * sizeof(double));
}

void lasp2_scan_states(float* states, float* last, const float* first, const float* decay, int B, int n, int H, int d,
                       int L, bool reverse) {
  const int64_t dd = int64_t{d} * d, per_b = int64_t{H} * dd;
#pragma omp parallel for schedule(static)
  for (int64_t bh = 0; bh < int64_t{B} * H; ++bh) {
    const int64_t b = bh / H, h = bh % H;
    const double w = std::exp(static_cast<double>(L) * std::log(static_cast<double>(decay[h])));
    for (int64_t e = 0; e < dd; ++e) {
      const int64_t at = b * per_b + h * dd + e;  // (b, h, e) of the per-sequence arrays
      double acc = first ? first[at] : 0.0;
      for (int i = 0; i < n; ++i) {
        const int j = reverse ? n - 1 - i : i;
        float* slot = states + (b * n + j) * per_b + h * dd + e;
        const double old = *slot;
        *slot = static_cast<float>(acc);
        acc = w * acc + old;
      }
      if (last) last[at] = static_cast<float>(acc);
    }
  }
}

}  // namespace lintrain::cpu
