// CPU body of the blockwise causal linear attention (the op and its math:
// runtime/ops.h). Every matrix product goes through gemm(); the element loops
// here only apply the decay mask and per-row decay scales. Each thread's
// buffers are its slice of the scratch arena, independent of T.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "runtime/arena.h"
#include "runtime/backend.h"
#include "runtime/cpu/gemm.h"

namespace lintrain::cpu {

namespace {

// pw[n] = lambda^n, n = 0..block, as exp(n log lambda): for lambda near 0 the
// powers underflow to exactly 0 instead of producing 0 * inf = NaN later.
void decay_powers(float lambda, int block, float* pw) {
  const double log_lambda = std::log(static_cast<double>(lambda));
  for (int n = 0; n <= block; ++n) pw[n] = static_cast<float>(std::exp(n * log_lambda));
}

// A (c, c) = (X Y^T) .* D with D[i,s] = pw[i-s] for s <= i, else 0.
// The full product is masked afterwards (not skipped) so every row sums the
// same way whatever c is; entries above the diagonal become exact zeros.
void masked_scores(const float* X, int ldx, const float* Y, int ldy, int c, int d, const float* pw,
                   float* A) {
  gemm(false, true, c, c, d, 1.0f, X, ldx, Y, ldy, 0.0f, A, c);
  for (int i = 0; i < c; ++i) {
    float* a = A + static_cast<size_t>(i) * c;
    for (int s = 0; s <= i; ++s) a[s] *= pw[i - s];
    for (int s = i + 1; s < c; ++s) a[s] = 0.0f;
  }
}

// Y (c, d) = diag(scale) X, X with row stride ldx; Y dense.
void scale_rows(const float* X, int ldx, const float* scale, int c, int d, float* Y) {
  for (int i = 0; i < c; ++i) {
    const float* x = X + static_cast<size_t>(i) * ldx;
    float* y = Y + static_cast<size_t>(i) * d;
    for (int j = 0; j < d; ++j) y[j] = scale[i] * x[j];
  }
}

void scale_in_place(float* X, size_t n, float s) {
  for (size_t i = 0; i < n; ++i) X[i] *= s;
}

// lk[s] = Lk[s] = lambda^(c-1-s) for a block of c tokens.
void key_scales(const float* pw, int c, float* lk) {
  for (int s = 0; s < c; ++s) lk[s] = pw[c - 1 - s];
}

// One thread's buffers, carved from its slice of the arena (each one
// 64-byte aligned): A (and A2 for the backward) block x block, X block x d,
// S d x d, pw block + 1, lk block.
struct ThreadBuffers {
  float *A, *A2, *X, *S, *pw, *lk;
};

size_t buffer_floats(size_t n) { return arena_round(n * sizeof(float)) / sizeof(float); }

size_t slice_floats(const LinearAttentionDims& m, bool backward) {
  const size_t nb = m.block, d = m.d;
  return buffer_floats(nb * nb) * (backward ? 2 : 1) + buffer_floats(nb * d) + buffer_floats(d * d) +
         buffer_floats(nb + 1) + buffer_floats(nb);
}

ThreadBuffers thread_buffers(float* slice, const LinearAttentionDims& m, bool backward) {
  const size_t nb = m.block, d = m.d;
  float* p = slice;
  auto next = [&p](size_t n) {
    float* buf = p;
    p += buffer_floats(n);
    return buf;
  };
  ThreadBuffers t{};
  t.A = next(nb * nb);
  t.A2 = backward ? next(nb * nb) : nullptr;
  t.X = next(nb * d);
  t.S = next(d * d);
  t.pw = next(nb + 1);
  t.lk = next(nb);
  return t;
}

}  // namespace

size_t linear_attention_forward_scratch_bytes(const LinearAttentionDims& m) {
  return static_cast<size_t>(omp_get_max_threads()) * slice_floats(m, false) * sizeof(float);
}

size_t linear_attention_backward_scratch_bytes(const LinearAttentionDims& m) {
  return static_cast<size_t>(omp_get_max_threads()) * slice_floats(m, true) * sizeof(float);
}

void linear_attention_forward(Arena& arena, float* o, const float* q, const float* k, const float* v,
                              const float* decay, const float* state_in, float* state_out,
                              const LinearAttentionDims& m) {
  const int d = m.d, nb = m.block, G = m.H / m.KVH;
  const size_t dd = static_cast<size_t>(d) * d;
  const int nthreads = omp_get_max_threads();
  const size_t slice = slice_floats(m, false);
  ScratchScope scratch(arena);
  float* slices = scratch.take<float>(nthreads * slice, "linear_attention_forward");
#pragma omp parallel num_threads(nthreads)
  {
    const ThreadBuffers t = thread_buffers(slices + omp_get_thread_num() * slice, m, false);
    float *A = t.A, *X = t.X, *S = t.S, *pw = t.pw, *lk = t.lk;
#pragma omp for schedule(static)
    for (int bg = 0; bg < m.B * m.KVH; ++bg) {
      const int b = bg / m.KVH, g = bg % m.KVH;
      const size_t row0 = static_cast<size_t>(b) * m.T;
      const float* kh = k + row0 * m.ldk + static_cast<size_t>(g) * d;
      const float* vh = v + row0 * m.ldv + static_cast<size_t>(g) * d;
      for (int j = 0; j < G; ++j) {
        const int h = g * G + j;
        const float* qh = q + row0 * m.ldq + static_cast<size_t>(h) * d;
        float* oh = o + row0 * m.ldo + static_cast<size_t>(h) * d;
        const size_t bh = static_cast<size_t>(b) * m.H + h;
        decay_powers(decay[h], nb, pw);
        if (state_in) std::memcpy(S, state_in + bh * dd, dd * sizeof(float));
        else std::fill(S, S + dd, 0.0f);
        for (int t0 = 0; t0 < m.T; t0 += nb) {
          const int c = std::min(nb, m.T - t0);
          const float* Qb = qh + static_cast<size_t>(t0) * m.ldq;
          const float* Kb = kh + static_cast<size_t>(t0) * m.ldk;
          const float* Vb = vh + static_cast<size_t>(t0) * m.ldv;
          float* Ob = oh + static_cast<size_t>(t0) * m.ldo;
          // intra: ((Q K^T) .* D) V
          masked_scores(Qb, m.ldq, Kb, m.ldk, c, d, pw, A);
          gemm(false, false, c, d, c, 1.0f, A, c, Vb, m.ldv, 0.0f, Ob, m.ldo);
          // inter: + (Lq * Q) S
          scale_rows(Qb, m.ldq, pw + 1, c, d, X);
          gemm(false, false, c, d, d, 1.0f, X, d, S, d, 1.0f, Ob, m.ldo);
          // S = lambda^c S + (Lk * K)^T V
          key_scales(pw, c, lk);
          scale_rows(Kb, m.ldk, lk, c, d, X);
          scale_in_place(S, dd, pw[c]);
          gemm(true, false, d, d, c, 1.0f, X, d, Vb, m.ldv, 1.0f, S, d);
        }
        if (state_out) std::memcpy(state_out + bh * dd, S, dd * sizeof(float));
      }
    }
  }
}

void linear_attention_backward(Arena& arena, float* dq, float* dk, float* dv, float* dstate_in,
                               const float* dout, const float* dstate_out, const float* q,
                               const float* k, const float* v, const float* decay,
                               const float* state_in, const LinearAttentionDims& m) {
  const int d = m.d, nb = m.block, G = m.H / m.KVH;
  const size_t dd = static_cast<size_t>(d) * d;
  const int nblocks = (m.T + nb - 1) / nb;
  const int nthreads = omp_get_max_threads();
  const size_t slice = slice_floats(m, true);
  ScratchScope scratch(arena);
  float* slices = scratch.take<float>(nthreads * slice, "linear_attention_backward");
#pragma omp parallel num_threads(nthreads)
  {
    const ThreadBuffers t = thread_buffers(slices + omp_get_thread_num() * slice, m, true);
    float *A1 = t.A, *A2 = t.A2, *X = t.X, *S = t.S, *pw = t.pw, *lk = t.lk;
#pragma omp for schedule(static)
    for (int bg = 0; bg < m.B * m.KVH; ++bg) {
      const int b = bg / m.KVH, g = bg % m.KVH;
      const size_t row0 = static_cast<size_t>(b) * m.T;
      const float* kh = k + row0 * m.ldk + static_cast<size_t>(g) * d;
      const float* vh = v + row0 * m.ldv + static_cast<size_t>(g) * d;
      float* dkh = dk + row0 * m.ldk + static_cast<size_t>(g) * d;
      float* dvh = dv + row0 * m.ldv + static_cast<size_t>(g) * d;
      // dk, dv of this kv head collect every query head of the group: zero once.
      for (int t = 0; t < m.T; ++t) {
        std::memset(dkh + static_cast<size_t>(t) * m.ldk, 0, d * sizeof(float));
        std::memset(dvh + static_cast<size_t>(t) * m.ldv, 0, d * sizeof(float));
      }
      for (int j = 0; j < G; ++j) {
        const int h = g * G + j;
        const float* qh = q + row0 * m.ldq + static_cast<size_t>(h) * d;
        const float* doh = dout + row0 * m.ldo + static_cast<size_t>(h) * d;
        float* dqh = dq + row0 * m.ldq + static_cast<size_t>(h) * d;
        const size_t bh = static_cast<size_t>(b) * m.H + h;
        decay_powers(decay[h], nb, pw);

        // Sweep 1, first block to last: intra terms of dq, dk, dv, and the
        // entering state P (in S) for dq += Lq * (dO P^T).
        if (state_in) std::memcpy(S, state_in + bh * dd, dd * sizeof(float));
        else std::fill(S, S + dd, 0.0f);
        for (int blk = 0; blk < nblocks; ++blk) {
          const int t0 = blk * nb, c = std::min(nb, m.T - t0);
          const float* Qb = qh + static_cast<size_t>(t0) * m.ldq;
          const float* Kb = kh + static_cast<size_t>(t0) * m.ldk;
          const float* Vb = vh + static_cast<size_t>(t0) * m.ldv;
          const float* dOb = doh + static_cast<size_t>(t0) * m.ldo;
          float* dQb = dqh + static_cast<size_t>(t0) * m.ldq;
          float* dKb = dkh + static_cast<size_t>(t0) * m.ldk;
          float* dVb = dvh + static_cast<size_t>(t0) * m.ldv;
          masked_scores(dOb, m.ldo, Vb, m.ldv, c, d, pw, A2);  // (dO V^T) .* D
          gemm(false, false, c, d, c, 1.0f, A2, c, Kb, m.ldk, 0.0f, dQb, m.ldq);
          gemm(true, false, c, d, c, 1.0f, A2, c, Qb, m.ldq, 1.0f, dKb, m.ldk);
          masked_scores(Qb, m.ldq, Kb, m.ldk, c, d, pw, A1);  // (Q K^T) .* D
          gemm(true, false, c, d, c, 1.0f, A1, c, dOb, m.ldo, 1.0f, dVb, m.ldv);
          scale_rows(dOb, m.ldo, pw + 1, c, d, X);
          gemm(false, true, c, d, d, 1.0f, X, d, S, d, 1.0f, dQb, m.ldq);
          if (blk + 1 < nblocks) {  // the state after the last block is not needed
            key_scales(pw, c, lk);
            scale_rows(Kb, m.ldk, lk, c, d, X);
            scale_in_place(S, dd, pw[c]);
            gemm(true, false, d, d, c, 1.0f, X, d, Vb, m.ldv, 1.0f, S, d);
          }
        }

        // Sweep 2, last block to first: G (in S) = dL/d(state leaving the block).
        if (dstate_out) std::memcpy(S, dstate_out + bh * dd, dd * sizeof(float));
        else std::fill(S, S + dd, 0.0f);
        for (int blk = nblocks - 1; blk >= 0; --blk) {
          const int t0 = blk * nb, c = std::min(nb, m.T - t0);
          const float* Qb = qh + static_cast<size_t>(t0) * m.ldq;
          const float* Kb = kh + static_cast<size_t>(t0) * m.ldk;
          const float* Vb = vh + static_cast<size_t>(t0) * m.ldv;
          const float* dOb = doh + static_cast<size_t>(t0) * m.ldo;
          float* dKb = dkh + static_cast<size_t>(t0) * m.ldk;
          float* dVb = dvh + static_cast<size_t>(t0) * m.ldv;
          key_scales(pw, c, lk);
          scale_rows(Vb, m.ldv, lk, c, d, X);  // dK += Lk * (V G^T)
          gemm(false, true, c, d, d, 1.0f, X, d, S, d, 1.0f, dKb, m.ldk);
          scale_rows(Kb, m.ldk, lk, c, d, X);  // dV += (Lk * K) G
          gemm(false, false, c, d, d, 1.0f, X, d, S, d, 1.0f, dVb, m.ldv);
          // G entering this block: lambda^c G + (Lq * Q)^T dO
          scale_rows(Qb, m.ldq, pw + 1, c, d, X);
          scale_in_place(S, dd, pw[c]);
          gemm(true, false, d, d, c, 1.0f, X, d, dOb, m.ldo, 1.0f, S, d);
        }
        if (dstate_in) std::memcpy(dstate_in + bh * dd, S, dd * sizeof(float));
      }
    }
  }
}

}  // namespace lintrain::cpu
