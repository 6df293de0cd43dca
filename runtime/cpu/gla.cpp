// CPU body of gated linear attention (the op and its math: runtime/ops_gla.h,
// docs/gated_linear_attention.md). Blocks of c tokens; inside a block the
// cumulative log gates Bc (c, d) turn every gate product into exp of a
// difference. Matrix products go through gemm(); the element loops apply the
// gate factors. Each thread's buffers are its slice of the scratch arena,
// independent of T.
#include "runtime/cpu/gla_kernels.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "runtime/arena.h"
#include "runtime/backend.h"
#include "runtime/cpu/gemm.h"

namespace lintrain::cpu {

namespace gla {

void cumulative_gates(const float* g, int ldg, int c, int d, float* Bc) {
  for (int i = 0; i < d; ++i) {
    double acc = 0.0;
    for (int t = 0; t < c; ++t) {
      acc += g[static_cast<size_t>(t) * ldg + i];
      Bc[static_cast<size_t>(t) * d + i] = static_cast<float>(acc);
    }
  }
}

void gated_scores(const float* X, int ldx, const float* Y, int ldy, const float* Bc, int c, int d, float* A,
                  float* Xs, float* Ys) {
  for (int i0 = 0; i0 < c; i0 += kSubBlock) {
    const int i1 = std::min(c, i0 + kSubBlock), ni = i1 - i0;
    if (i0 > 0) {  // rows of sub-block I against every earlier token, split at r = Bc[i0 - 1]
      const float* r = Bc + static_cast<size_t>(i0 - 1) * d;
      for (int t = i0; t < i1; ++t)
        for (int i = 0; i < d; ++i)
          Xs[static_cast<size_t>(t - i0) * d + i] =
              X[static_cast<size_t>(t) * ldx + i] * std::exp(Bc[static_cast<size_t>(t) * d + i] - r[i]);
      for (int s = 0; s < i0; ++s)
        for (int i = 0; i < d; ++i)
          Ys[static_cast<size_t>(s) * d + i] =
              Y[static_cast<size_t>(s) * ldy + i] * std::exp(r[i] - Bc[static_cast<size_t>(s) * d + i]);
      gemm(false, true, ni, i0, d, 1.0f, Xs, d, Ys, d, 0.0f, A + static_cast<size_t>(i0) * c, c);
    }
    for (int t = i0; t < i1; ++t) {  // the diagonal sub-block, pair by pair
      float* a = A + static_cast<size_t>(t) * c;
      const float* x = X + static_cast<size_t>(t) * ldx;
      const float* bt = Bc + static_cast<size_t>(t) * d;
      for (int s = i0; s <= t; ++s) {
        const float* y = Y + static_cast<size_t>(s) * ldy;
        const float* bs = Bc + static_cast<size_t>(s) * d;
        float acc = 0.0f;
        for (int i = 0; i < d; ++i) acc += x[i] * y[i] * std::exp(bt[i] - bs[i]);
        a[s] = acc;
      }
      for (int s = t + 1; s < c; ++s) a[s] = 0.0f;
    }
  }
}

void gated_apply(const float* M, const float* Y, int ldy, const float* Bc, int c, int d, float* out, float* Ys,
                 float* tmp) {
  for (int i0 = 0; i0 < c; i0 += kSubBlock) {
    const int i1 = std::min(c, i0 + kSubBlock), ni = i1 - i0;
    float* o = out + static_cast<size_t>(i0) * d;
    if (i0 > 0) {
      const float* r = Bc + static_cast<size_t>(i0 - 1) * d;
      for (int s = 0; s < i0; ++s)
        for (int i = 0; i < d; ++i)
          Ys[static_cast<size_t>(s) * d + i] =
              Y[static_cast<size_t>(s) * ldy + i] * std::exp(r[i] - Bc[static_cast<size_t>(s) * d + i]);
      gemm(false, false, ni, d, i0, 1.0f, M + static_cast<size_t>(i0) * c, c, Ys, d, 0.0f, tmp, d);
      for (int t = i0; t < i1; ++t)
        for (int i = 0; i < d; ++i)
          o[static_cast<size_t>(t - i0) * d + i] =
              tmp[static_cast<size_t>(t - i0) * d + i] * std::exp(Bc[static_cast<size_t>(t) * d + i] - r[i]);
    } else {
      std::fill(o, o + static_cast<size_t>(ni) * d, 0.0f);
    }
    for (int t = i0; t < i1; ++t) {
      float* ot = out + static_cast<size_t>(t) * d;
      const float* m = M + static_cast<size_t>(t) * c;
      const float* bt = Bc + static_cast<size_t>(t) * d;
      for (int s = i0; s <= t; ++s) {
        const float* y = Y + static_cast<size_t>(s) * ldy;
        const float* bs = Bc + static_cast<size_t>(s) * d;
        for (int i = 0; i < d; ++i) ot[i] += m[s] * y[i] * std::exp(bt[i] - bs[i]);
      }
    }
  }
}

void gated_apply_t(const float* M, const float* X, int ldx, const float* Bc, int c, int d, float* out, float* Xs,
                   float* tmp) {
  for (int j0 = 0; j0 < c; j0 += kSubBlock) {
    const int j1 = std::min(c, j0 + kSubBlock), nj = j1 - j0;
    float* o = out + static_cast<size_t>(j0) * d;
    if (j1 < c) {  // later tokens t >= j1 against sub-block J, split at r = Bc[j1 - 1]
      const float* r = Bc + static_cast<size_t>(j1 - 1) * d;
      for (int t = j1; t < c; ++t)
        for (int i = 0; i < d; ++i)
          Xs[static_cast<size_t>(t - j1) * d + i] =
              X[static_cast<size_t>(t) * ldx + i] * std::exp(Bc[static_cast<size_t>(t) * d + i] - r[i]);
      gemm(true, false, nj, d, c - j1, 1.0f, M + static_cast<size_t>(j1) * c + j0, c, Xs, d, 0.0f, tmp, d);
      for (int s = j0; s < j1; ++s)
        for (int i = 0; i < d; ++i)
          o[static_cast<size_t>(s - j0) * d + i] =
              tmp[static_cast<size_t>(s - j0) * d + i] * std::exp(r[i] - Bc[static_cast<size_t>(s) * d + i]);
    } else {
      std::fill(o, o + static_cast<size_t>(nj) * d, 0.0f);
    }
    for (int s = j0; s < j1; ++s) {
      float* os = out + static_cast<size_t>(s) * d;
      const float* bs = Bc + static_cast<size_t>(s) * d;
      for (int t = s; t < j1; ++t) {
        const float m = M[static_cast<size_t>(t) * c + s];
        const float* x = X + static_cast<size_t>(t) * ldx;
        const float* bt = Bc + static_cast<size_t>(t) * d;
        for (int i = 0; i < d; ++i) os[i] += m * x[i] * std::exp(bt[i] - bs[i]);
      }
    }
  }
}

void scale_by_exp(const float* X, int ldx, const float* E, const float* ref, int c, int d, float* out) {
  for (int t = 0; t < c; ++t)
    for (int i = 0; i < d; ++i) {
      const float e = E[static_cast<size_t>(t) * d + i];
      out[static_cast<size_t>(t) * d + i] = X[static_cast<size_t>(t) * ldx + i] * std::exp(ref ? ref[i] - e : e);
    }
}

void state_update(float* S, const float* Kb, int ldk, const float* Vb, int ldv, const float* Bc, int c, int d,
                  float* X) {
  const float* last = Bc + static_cast<size_t>(c - 1) * d;
  scale_by_exp(Kb, ldk, Bc, last, c, d, X);  // K .* exp(Bc_last - Bc)
  for (int i = 0; i < d; ++i) {
    const float w = std::exp(last[i]);
    float* row = S + static_cast<size_t>(i) * d;
    for (int j = 0; j < d; ++j) row[j] *= w;
  }
  gemm(true, false, d, d, c, 1.0f, X, d, Vb, ldv, 1.0f, S, d);
}

void masked_products(const float* X, int ldx, const float* Y, int ldy, int c, int d, float* A) {
  gemm(false, true, c, c, d, 1.0f, X, ldx, Y, ldy, 0.0f, A, c);
  for (int t = 0; t < c; ++t)
    for (int s = t + 1; s < c; ++s) A[static_cast<size_t>(t) * c + s] = 0.0f;
}

size_t floats(size_t n) { return arena_round(n * sizeof(float)) / sizeof(float); }

}  // namespace gla

namespace {

using namespace gla;

// One thread's buffers: A, A2 (c x c), X1..X3 and Bc (c x d), S (d x d), acc (d doubles).
struct Buffers {
  float *A, *A2, *X1, *X2, *X3, *Bc, *S;
  double* acc;
};

size_t slice_floats(const LinearAttentionDims& m, bool backward) {
  const size_t c = m.block, d = m.d;
  return floats(c * c) * (backward ? 2 : 1) + floats(c * d) * (backward ? 4 : 3) + floats(d * d) +
         (backward ? floats(2 * d) : 0);
}

Buffers buffers(float* p, const LinearAttentionDims& m, bool backward) {
  const size_t c = m.block, d = m.d;
  auto next = [&p](size_t n) {
    float* b = p;
    p += floats(n);
    return b;
  };
  Buffers b{};
  b.A = next(c * c);
  b.A2 = backward ? next(c * c) : nullptr;
  b.X1 = next(c * d);
  b.X2 = next(c * d);
  b.X3 = backward ? next(c * d) : nullptr;
  b.Bc = next(c * d);
  b.S = next(d * d);
  b.acc = backward ? reinterpret_cast<double*>(next(2 * d)) : nullptr;
  return b;
}

}  // namespace

size_t gla_forward_scratch_bytes(const LinearAttentionDims& m) {
  return static_cast<size_t>(omp_get_max_threads()) * slice_floats(m, false) * sizeof(float);
}

size_t gla_backward_scratch_bytes(const LinearAttentionDims& m) {
  return static_cast<size_t>(omp_get_max_threads()) * slice_floats(m, true) * sizeof(float);
}

void gla_forward(Arena& arena, float* o, const float* q, const float* k, const float* v, const float* lg,
                 const float* state_in, float* state_out, const LinearAttentionDims& m) {
  const int d = m.d, nb = m.block, G = m.H / m.KVH;
  const size_t dd = static_cast<size_t>(d) * d;
  const int nthreads = omp_get_max_threads();
  const size_t slice = slice_floats(m, false);
  ScratchScope scratch(arena);
  float* slices = scratch.take<float>(nthreads * slice, "gla_forward");
#pragma omp parallel num_threads(nthreads)
  {
    const Buffers t = buffers(slices + omp_get_thread_num() * slice, m, false);
#pragma omp for schedule(static)
    for (int bg = 0; bg < m.B * m.KVH; ++bg) {
      const int b = bg / m.KVH, g = bg % m.KVH;
      const size_t row0 = static_cast<size_t>(b) * m.T;
      const float* kh = k + row0 * m.ldk + static_cast<size_t>(g) * d;
      const float* vh = v + row0 * m.ldv + static_cast<size_t>(g) * d;
      for (int j = 0; j < G; ++j) {
        const int h = g * G + j;
        const float* qh = q + row0 * m.ldq + static_cast<size_t>(h) * d;
        const float* gh = lg + row0 * m.ldg + static_cast<size_t>(h) * d;
        float* oh = o + row0 * m.ldo + static_cast<size_t>(h) * d;
        const size_t bh = static_cast<size_t>(b) * m.H + h;
        if (state_in) std::memcpy(t.S, state_in + bh * dd, dd * sizeof(float));
        else std::fill(t.S, t.S + dd, 0.0f);
        for (int t0 = 0; t0 < m.T; t0 += nb) {
          const int c = std::min(nb, m.T - t0);
          const float* Qb = qh + static_cast<size_t>(t0) * m.ldq;
          const float* Kb = kh + static_cast<size_t>(t0) * m.ldk;
          const float* Vb = vh + static_cast<size_t>(t0) * m.ldv;
          float* Ob = oh + static_cast<size_t>(t0) * m.ldo;
          cumulative_gates(gh + static_cast<size_t>(t0) * m.ldg, m.ldg, c, d, t.Bc);
          gated_scores(Qb, m.ldq, Kb, m.ldk, t.Bc, c, d, t.A, t.X1, t.X2);
          gemm(false, false, c, d, c, 1.0f, t.A, c, Vb, m.ldv, 0.0f, Ob, m.ldo);  // intra: A V
          scale_by_exp(Qb, m.ldq, t.Bc, nullptr, c, d, t.X1);                      // inter: (Q .* exp(Bc)) S
          gemm(false, false, c, d, d, 1.0f, t.X1, d, t.S, d, 1.0f, Ob, m.ldo);
          state_update(t.S, Kb, m.ldk, Vb, m.ldv, t.Bc, c, d, t.X1);
        }
        if (state_out) std::memcpy(state_out + bh * dd, t.S, dd * sizeof(float));
      }
    }
  }
}

void gla_backward(Arena& arena, float* dq, float* dk, float* dv, float* dlg, float* dstate_in, const float* dout,
                  const float* dstate_out, const float* q, const float* k, const float* v, const float* lg,
                  const float* state_in, const LinearAttentionDims& m) {
  const int d = m.d, nb = m.block, G = m.H / m.KVH;
  const size_t dd = static_cast<size_t>(d) * d;
  const int nblocks = (m.T + nb - 1) / nb;
  const int nthreads = omp_get_max_threads();
  const size_t slice = slice_floats(m, true);
  ScratchScope scratch(arena);
  float* slices = scratch.take<float>(nthreads * slice, "gla_backward");
#pragma omp parallel num_threads(nthreads)
  {
    const Buffers t = buffers(slices + omp_get_thread_num() * slice, m, true);
#pragma omp for schedule(static)
    for (int bg = 0; bg < m.B * m.KVH; ++bg) {
      const int b = bg / m.KVH, g = bg % m.KVH;
      const size_t row0 = static_cast<size_t>(b) * m.T;
      const float* kh = k + row0 * m.ldk + static_cast<size_t>(g) * d;
      const float* vh = v + row0 * m.ldv + static_cast<size_t>(g) * d;
      float* dkh = dk + row0 * m.ldk + static_cast<size_t>(g) * d;
      float* dvh = dv + row0 * m.ldv + static_cast<size_t>(g) * d;
      for (int s = 0; s < m.T; ++s) {  // dk, dv of the kv head collect its query heads: zero once
        std::memset(dkh + static_cast<size_t>(s) * m.ldk, 0, d * sizeof(float));
        std::memset(dvh + static_cast<size_t>(s) * m.ldv, 0, d * sizeof(float));
      }
      for (int j = 0; j < G; ++j) {
        const int h = g * G + j;
        const size_t hd = static_cast<size_t>(h) * d;
        const float* qh = q + row0 * m.ldq + hd;
        const float* gh = lg + row0 * m.ldg + hd;
        const float* doh = dout + row0 * m.ldo + hd;
        float* dqh = dq + row0 * m.ldq + hd;
        float* dgh = dlg + row0 * m.ldg + hd;
        const size_t bh = static_cast<size_t>(b) * m.H + h;

        // Sweep 1, first block to last: dq = (intra) + exp(Bc) .* (dO S^T),
        // dlog_gate <- q .* dq for now; S ends as S_T.
        if (state_in) std::memcpy(t.S, state_in + bh * dd, dd * sizeof(float));
        else std::fill(t.S, t.S + dd, 0.0f);
        for (int blk = 0; blk < nblocks; ++blk) {
          const int t0 = blk * nb, c = std::min(nb, m.T - t0);
          const float* Qb = qh + static_cast<size_t>(t0) * m.ldq;
          const float* Kb = kh + static_cast<size_t>(t0) * m.ldk;
          const float* Vb = vh + static_cast<size_t>(t0) * m.ldv;
          const float* dOb = doh + static_cast<size_t>(t0) * m.ldo;
          float* dQb = dqh + static_cast<size_t>(t0) * m.ldq;
          float* dGb = dgh + static_cast<size_t>(t0) * m.ldg;
          cumulative_gates(gh + static_cast<size_t>(t0) * m.ldg, m.ldg, c, d, t.Bc);
          masked_products(dOb, m.ldo, Vb, m.ldv, c, d, t.A2);  // dO V^T, s <= t
          gated_apply(t.A2, Kb, m.ldk, t.Bc, c, d, t.X1, t.X2, t.X3);
          gemm(false, true, c, d, d, 1.0f, dOb, m.ldo, t.S, d, 0.0f, t.X2, d);  // dO S^T
          for (int s = 0; s < c; ++s)
            for (int i = 0; i < d; ++i) {
              const size_t e = static_cast<size_t>(s) * d + i;
              const float dqv = t.X1[e] + std::exp(t.Bc[e]) * t.X2[e];
              dQb[static_cast<size_t>(s) * m.ldq + i] = dqv;
              dGb[static_cast<size_t>(s) * m.ldg + i] = Qb[static_cast<size_t>(s) * m.ldq + i] * dqv;
            }
          state_update(t.S, Kb, m.ldk, Vb, m.ldv, t.Bc, c, d, t.X1);
        }
        // The gradient through S_T's own dependence on the gates.
        for (int i = 0; i < d; ++i) {
          double acc = 0.0;
          if (dstate_out)
            for (int jj = 0; jj < d; ++jj)
              acc += static_cast<double>(t.S[static_cast<size_t>(i) * d + jj]) *
                     dstate_out[bh * dd + static_cast<size_t>(i) * d + jj];
          t.acc[i] = acc;
        }

        // Sweep 2, last block to first, S now holding dL/d(state at the block's end).
        if (dstate_out) std::memcpy(t.S, dstate_out + bh * dd, dd * sizeof(float));
        else std::fill(t.S, t.S + dd, 0.0f);
        for (int blk = nblocks - 1; blk >= 0; --blk) {
          const int t0 = blk * nb, c = std::min(nb, m.T - t0);
          const float* Qb = qh + static_cast<size_t>(t0) * m.ldq;
          const float* Kb = kh + static_cast<size_t>(t0) * m.ldk;
          const float* Vb = vh + static_cast<size_t>(t0) * m.ldv;
          const float* dOb = doh + static_cast<size_t>(t0) * m.ldo;
          float* dKb = dkh + static_cast<size_t>(t0) * m.ldk;
          float* dVb = dvh + static_cast<size_t>(t0) * m.ldv;
          float* dGb = dgh + static_cast<size_t>(t0) * m.ldg;
          cumulative_gates(gh + static_cast<size_t>(t0) * m.ldg, m.ldg, c, d, t.Bc);
          const float* last = t.Bc + static_cast<size_t>(c - 1) * d;
          // dV += A^T dO + (K .* exp(Bc_last - Bc)) dS
          gated_scores(Qb, m.ldq, Kb, m.ldk, t.Bc, c, d, t.A, t.X1, t.X2);
          gemm(true, false, c, d, c, 1.0f, t.A, c, dOb, m.ldo, 1.0f, dVb, m.ldv);
          scale_by_exp(Kb, m.ldk, t.Bc, last, c, d, t.X1);
          gemm(false, false, c, d, d, 1.0f, t.X1, d, t.S, d, 1.0f, dVb, m.ldv);
          // This head's dK share (X3) = intra + exp(Bc_last - Bc) .* (V dS^T)
          masked_products(dOb, m.ldo, Vb, m.ldv, c, d, t.A2);
          gated_apply_t(t.A2, Qb, m.ldq, t.Bc, c, d, t.X3, t.X1, t.X2);
          gemm(false, true, c, d, d, 1.0f, Vb, m.ldv, t.S, d, 0.0f, t.X1, d);
          for (int s = 0; s < c; ++s)
            for (int i = 0; i < d; ++i) {
              const size_t e = static_cast<size_t>(s) * d + i;
              t.X3[e] += std::exp(last[i] - t.Bc[e]) * t.X1[e];
              dKb[static_cast<size_t>(s) * m.ldk + i] += t.X3[e];
            }
          // dlog_gate_t = sum_{u >= t} (q .* dq - k .* dk^h)_u + rowsum(S_T .* dS_T)
          for (int s = c - 1; s >= 0; --s)
            for (int i = 0; i < d; ++i) {
              float& dgv = dGb[static_cast<size_t>(s) * m.ldg + i];
              t.acc[i] += static_cast<double>(dgv) -
                          static_cast<double>(Kb[static_cast<size_t>(s) * m.ldk + i]) * t.X3[static_cast<size_t>(s) * d + i];
              dgv = static_cast<float>(t.acc[i]);
            }
          // dS <- diag(exp(Bc_last)) dS + (Q .* exp(Bc))^T dO
          for (int i = 0; i < d; ++i) {
            const float w = std::exp(last[i]);
            float* row = t.S + static_cast<size_t>(i) * d;
            for (int jj = 0; jj < d; ++jj) row[jj] *= w;
          }
          scale_by_exp(Qb, m.ldq, t.Bc, nullptr, c, d, t.X1);
          gemm(true, false, d, d, c, 1.0f, t.X1, d, dOb, m.ldo, 1.0f, t.S, d);
        }
        if (dstate_in) std::memcpy(dstate_in + bh * dd, t.S, dd * sizeof(float));
      }
    }
  }
}

}  // namespace lintrain::cpu
