// CPU body of the blockwise causal linear attention (see linear_attention.h for
// the math). Every matrix product goes through gemm(); the element loops here
// only apply the decay mask and per-row decay scales.
#include "runtime/cpu/linear_attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "runtime/cpu/gemm.h"
#include "runtime/error.h"

namespace lintrain {

namespace {

void check_dims(const char* op, const LinearAttentionDims& m, const float* decay) {
  LT_CHECK(m.B >= 0 && m.T >= 0, "[", op, "] B and T must be >= 0, got B=", m.B, " T=", m.T);
  LT_CHECK(m.H >= 1 && m.KVH >= 1 && m.H % m.KVH == 0, "[", op,
           "] need H >= 1, KVH >= 1 and H % KVH == 0, got H=", m.H, " KVH=", m.KVH);
  LT_CHECK(m.d >= 1, "[", op, "] head dim d must be >= 1, got ", m.d);
  LT_CHECK(m.block >= 1, "[", op, "] block must be >= 1, got ", m.block);
  LT_CHECK(m.ldq >= m.H * m.d && m.ldo >= m.H * m.d, "[", op, "] ldq=", m.ldq, " ldo=", m.ldo,
           " must be >= H*d=", m.H * m.d);
  LT_CHECK(m.ldk >= m.KVH * m.d && m.ldv >= m.KVH * m.d, "[", op, "] ldk=", m.ldk, " ldv=", m.ldv,
           " must be >= KVH*d=", m.KVH * m.d);
  LT_CHECK(decay != nullptr, "[", op, "] decay is null; pass H values in (0, 1]");
  for (int h = 0; h < m.H; ++h)
    LT_CHECK(decay[h] > 0.0f && decay[h] <= 1.0f, "[", op, "] decay[", h, "]=", decay[h],
             " must be in (0, 1] (1 = no decay)");
}

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

}  // namespace

void linear_attention_forward(float* o, const float* q, const float* k, const float* v,
                              const float* decay, const float* state_in, float* state_out,
                              const LinearAttentionDims& m) {
  check_dims("linear_attention_forward", m, decay);
  const int d = m.d, nb = m.block, G = m.H / m.KVH;
  const size_t dd = static_cast<size_t>(d) * d;
#pragma omp parallel
  {
    // Per-thread scratch, independent of T.
    std::vector<float> A(static_cast<size_t>(nb) * nb), X(static_cast<size_t>(nb) * d), S(dd);
    std::vector<float> pw(nb + 1), lk(nb);
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
        decay_powers(decay[h], nb, pw.data());
        if (state_in) std::memcpy(S.data(), state_in + bh * dd, dd * sizeof(float));
        else std::fill(S.begin(), S.end(), 0.0f);
        for (int t0 = 0; t0 < m.T; t0 += nb) {
          const int c = std::min(nb, m.T - t0);
          const float* Qb = qh + static_cast<size_t>(t0) * m.ldq;
          const float* Kb = kh + static_cast<size_t>(t0) * m.ldk;
          const float* Vb = vh + static_cast<size_t>(t0) * m.ldv;
          float* Ob = oh + static_cast<size_t>(t0) * m.ldo;
          // intra: ((Q K^T) .* D) V
          masked_scores(Qb, m.ldq, Kb, m.ldk, c, d, pw.data(), A.data());
          gemm(false, false, c, d, c, 1.0f, A.data(), c, Vb, m.ldv, 0.0f, Ob, m.ldo);
          // inter: + (Lq * Q) S
          scale_rows(Qb, m.ldq, pw.data() + 1, c, d, X.data());
          gemm(false, false, c, d, d, 1.0f, X.data(), d, S.data(), d, 1.0f, Ob, m.ldo);
          // S = lambda^c S + (Lk * K)^T V
          key_scales(pw.data(), c, lk.data());
          scale_rows(Kb, m.ldk, lk.data(), c, d, X.data());
          scale_in_place(S.data(), dd, pw[c]);
          gemm(true, false, d, d, c, 1.0f, X.data(), d, Vb, m.ldv, 1.0f, S.data(), d);
        }
        if (state_out) std::memcpy(state_out + bh * dd, S.data(), dd * sizeof(float));
      }
    }
  }
}

void linear_attention_backward(float* dq, float* dk, float* dv, float* dstate_in,
                               const float* dout, const float* dstate_out, const float* q,
                               const float* k, const float* v, const float* decay,
                               const float* state_in, const LinearAttentionDims& m) {
  check_dims("linear_attention_backward", m, decay);
  const int d = m.d, nb = m.block, G = m.H / m.KVH;
  const size_t dd = static_cast<size_t>(d) * d;
  const int nblocks = (m.T + nb - 1) / nb;
#pragma omp parallel
  {
    std::vector<float> A1(static_cast<size_t>(nb) * nb), A2(static_cast<size_t>(nb) * nb);
    std::vector<float> X(static_cast<size_t>(nb) * d), S(dd), pw(nb + 1), lk(nb);
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
        decay_powers(decay[h], nb, pw.data());

        // Sweep 1, first block to last: intra terms of dq, dk, dv, and the
        // entering state P (in S) for dq += Lq * (dO P^T).
        if (state_in) std::memcpy(S.data(), state_in + bh * dd, dd * sizeof(float));
        else std::fill(S.begin(), S.end(), 0.0f);
        for (int blk = 0; blk < nblocks; ++blk) {
          const int t0 = blk * nb, c = std::min(nb, m.T - t0);
          const float* Qb = qh + static_cast<size_t>(t0) * m.ldq;
          const float* Kb = kh + static_cast<size_t>(t0) * m.ldk;
          const float* Vb = vh + static_cast<size_t>(t0) * m.ldv;
          const float* dOb = doh + static_cast<size_t>(t0) * m.ldo;
          float* dQb = dqh + static_cast<size_t>(t0) * m.ldq;
          float* dKb = dkh + static_cast<size_t>(t0) * m.ldk;
          float* dVb = dvh + static_cast<size_t>(t0) * m.ldv;
          masked_scores(dOb, m.ldo, Vb, m.ldv, c, d, pw.data(), A2.data());  // (dO V^T) .* D
          gemm(false, false, c, d, c, 1.0f, A2.data(), c, Kb, m.ldk, 0.0f, dQb, m.ldq);
          gemm(true, false, c, d, c, 1.0f, A2.data(), c, Qb, m.ldq, 1.0f, dKb, m.ldk);
          masked_scores(Qb, m.ldq, Kb, m.ldk, c, d, pw.data(), A1.data());  // (Q K^T) .* D
          gemm(true, false, c, d, c, 1.0f, A1.data(), c, dOb, m.ldo, 1.0f, dVb, m.ldv);
          scale_rows(dOb, m.ldo, pw.data() + 1, c, d, X.data());
          gemm(false, true, c, d, d, 1.0f, X.data(), d, S.data(), d, 1.0f, dQb, m.ldq);
          if (blk + 1 < nblocks) {  // the state after the last block is not needed
            key_scales(pw.data(), c, lk.data());
            scale_rows(Kb, m.ldk, lk.data(), c, d, X.data());
            scale_in_place(S.data(), dd, pw[c]);
            gemm(true, false, d, d, c, 1.0f, X.data(), d, Vb, m.ldv, 1.0f, S.data(), d);
          }
        }

        // Sweep 2, last block to first: G (in S) = dL/d(state leaving the block).
        if (dstate_out) std::memcpy(S.data(), dstate_out + bh * dd, dd * sizeof(float));
        else std::fill(S.begin(), S.end(), 0.0f);
        for (int blk = nblocks - 1; blk >= 0; --blk) {
          const int t0 = blk * nb, c = std::min(nb, m.T - t0);
          const float* Qb = qh + static_cast<size_t>(t0) * m.ldq;
          const float* Kb = kh + static_cast<size_t>(t0) * m.ldk;
          const float* Vb = vh + static_cast<size_t>(t0) * m.ldv;
          const float* dOb = doh + static_cast<size_t>(t0) * m.ldo;
          float* dKb = dkh + static_cast<size_t>(t0) * m.ldk;
          float* dVb = dvh + static_cast<size_t>(t0) * m.ldv;
          key_scales(pw.data(), c, lk.data());
          scale_rows(Vb, m.ldv, lk.data(), c, d, X.data());  // dK += Lk * (V G^T)
          gemm(false, true, c, d, d, 1.0f, X.data(), d, S.data(), d, 1.0f, dKb, m.ldk);
          scale_rows(Kb, m.ldk, lk.data(), c, d, X.data());  // dV += (Lk * K) G
          gemm(false, false, c, d, d, 1.0f, X.data(), d, S.data(), d, 1.0f, dVb, m.ldv);
          // G entering this block: lambda^c G + (Lq * Q)^T dO
          scale_rows(Qb, m.ldq, pw.data() + 1, c, d, X.data());
          scale_in_place(S.data(), dd, pw[c]);
          gemm(true, false, d, d, c, 1.0f, X.data(), d, dOb, m.ldo, 1.0f, S.data(), d);
        }
        if (dstate_in) std::memcpy(dstate_in + bh * dd, S.data(), dd * sizeof(float));
      }
    }
  }
}

}  // namespace lintrain
