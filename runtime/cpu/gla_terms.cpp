// CPU bodies of the gated LASP-2 chunk-boundary terms, their folds and the GLA
// forget gate (runtime/ops_gla.h).
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "runtime/arena.h"
#include "runtime/backend.h"
#include "runtime/cpu/gemm.h"
#include "runtime/cpu/gla_kernels.h"

namespace lintrain::cpu {

namespace {

using gla::floats;

// Per thread: three (block, d) buffers and two d-double accumulators.
size_t slice_floats(const LinearAttentionDims& m) {
  const size_t c = m.block, d = m.d;
  return 3 * floats(c * d) + 2 * floats(2 * d);
}

struct Buffers {
  float *X1, *X2, *X3;
  double *acc, *run;
};

Buffers buffers(float* p, const LinearAttentionDims& m) {
  const size_t c = m.block, d = m.d;
  Buffers b{};
  b.X1 = p;
  b.X2 = b.X1 + floats(c * d);
  b.X3 = b.X2 + floats(c * d);
  b.acc = reinterpret_cast<double*>(b.X3 + floats(c * d));
  b.run = reinterpret_cast<double*>(reinterpret_cast<float*>(b.acc) + floats(2 * d));
  return b;
}

// X (c, d) = Q_b .* exp(cum), cum the running log-gate sum from the chunk's
// start carried in `run` (d doubles) and advanced over the block's c tokens.
void prefix_scaled(const float* Qb, int ldq, const float* gb, int ldg, int c, int d, double* run, float* X) {
  for (int t = 0; t < c; ++t)
    for (int i = 0; i < d; ++i) {
      run[i] += gb[static_cast<size_t>(t) * ldg + i];
      X[static_cast<size_t>(t) * d + i] = Qb[static_cast<size_t>(t) * ldq + i] * static_cast<float>(std::exp(run[i]));
    }
}

}  // namespace

size_t gla_terms_scratch_bytes(const LinearAttentionDims& m) {
  return static_cast<size_t>(omp_get_max_threads()) * slice_floats(m) * sizeof(float);
}

void gla_chunk_state(Arena& arena, float* M, float* log_decay, const float* k, const float* v, const float* lg,
                     const LinearAttentionDims& m) {
  const int d = m.d, nb = m.block, G = m.H / m.KVH;
  const size_t dd = static_cast<size_t>(d) * d;
  const int nthreads = omp_get_max_threads();
  const size_t slice = slice_floats(m);
  ScratchScope scratch(arena);
  float* slices = scratch.take<float>(nthreads * slice, "gla_chunk_state");
#pragma omp parallel num_threads(nthreads)
  {
    const Buffers t = buffers(slices + omp_get_thread_num() * slice, m);
#pragma omp for schedule(static)
    for (int bh = 0; bh < m.B * m.H; ++bh) {
      const int b = bh / m.H, h = bh % m.H, g = h / G;
      const size_t row0 = static_cast<size_t>(b) * m.T;
      const float* kh = k + row0 * m.ldk + static_cast<size_t>(g) * d;
      const float* vh = v + row0 * m.ldv + static_cast<size_t>(g) * d;
      const float* gh = lg + row0 * m.ldg + static_cast<size_t>(h) * d;
      float* S = M + static_cast<size_t>(bh) * dd;
      std::fill(S, S + dd, 0.0f);
      std::fill(t.run, t.run + d, 0.0);
      for (int t0 = 0; t0 < m.T; t0 += nb) {
        const int c = std::min(nb, m.T - t0);
        const float* gb = gh + static_cast<size_t>(t0) * m.ldg;
        gla::cumulative_gates(gb, m.ldg, c, d, t.X2);
        gla::state_update(S, kh + static_cast<size_t>(t0) * m.ldk, m.ldk, vh + static_cast<size_t>(t0) * m.ldv,
                          m.ldv, t.X2, c, d, t.X1);
        for (int s = 0; s < c; ++s)
          for (int i = 0; i < d; ++i) t.run[i] += gb[static_cast<size_t>(s) * m.ldg + i];
      }
      for (int i = 0; i < d; ++i) log_decay[static_cast<size_t>(bh) * d + i] = static_cast<float>(t.run[i]);
    }
  }
}

void gla_add_prefix_output(Arena& arena, float* o, const float* q, const float* lg, const float* P,
                           const LinearAttentionDims& m) {
  const int d = m.d, nb = m.block;
  const size_t dd = static_cast<size_t>(d) * d;
  const int nthreads = omp_get_max_threads();
  const size_t slice = slice_floats(m);
  ScratchScope scratch(arena);
  float* slices = scratch.take<float>(nthreads * slice, "gla_add_prefix_output");
#pragma omp parallel num_threads(nthreads)
  {
    const Buffers t = buffers(slices + omp_get_thread_num() * slice, m);
#pragma omp for schedule(static)
    for (int bh = 0; bh < m.B * m.H; ++bh) {
      const int b = bh / m.H, h = bh % m.H;
      const size_t row0 = static_cast<size_t>(b) * m.T, hd = static_cast<size_t>(h) * d;
      std::fill(t.run, t.run + d, 0.0);
      for (int t0 = 0; t0 < m.T; t0 += nb) {
        const int c = std::min(nb, m.T - t0);
        const size_t r = row0 + t0;
        prefix_scaled(q + r * m.ldq + hd, m.ldq, lg + r * m.ldg + hd, m.ldg, c, d, t.run, t.X1);
        gemm(false, false, c, d, d, 1.0f, t.X1, d, P + static_cast<size_t>(bh) * dd, d, 1.0f, o + r * m.ldo + hd,
             m.ldo);
      }
    }
  }
}

void gla_prefix_state_grad(Arena& arena, float* dP, const float* q, const float* lg, const float* dout,
                           const LinearAttentionDims& m) {
  const int d = m.d, nb = m.block;
  const size_t dd = static_cast<size_t>(d) * d;
  const int nthreads = omp_get_max_threads();
  const size_t slice = slice_floats(m);
  ScratchScope scratch(arena);
  float* slices = scratch.take<float>(nthreads * slice, "gla_prefix_state_grad");
#pragma omp parallel num_threads(nthreads)
  {
    const Buffers t = buffers(slices + omp_get_thread_num() * slice, m);
#pragma omp for schedule(static)
    for (int bh = 0; bh < m.B * m.H; ++bh) {
      const int b = bh / m.H, h = bh % m.H;
      const size_t row0 = static_cast<size_t>(b) * m.T, hd = static_cast<size_t>(h) * d;
      float* out = dP + static_cast<size_t>(bh) * dd;
      std::fill(out, out + dd, 0.0f);
      std::fill(t.run, t.run + d, 0.0);
      for (int t0 = 0; t0 < m.T; t0 += nb) {
        const int c = std::min(nb, m.T - t0);
        const size_t r = row0 + t0;
        prefix_scaled(q + r * m.ldq + hd, m.ldq, lg + r * m.ldg + hd, m.ldg, c, d, t.run, t.X1);
        gemm(true, false, d, d, c, 1.0f, t.X1, d, dout + r * m.ldo + hd, m.ldo, 1.0f, out, d);
      }
    }
  }
}

void gla_add_suffix_grads(Arena& arena, float* dk, float* dv, float* dlg, const float* k, const float* v,
                          const float* lg, const float* Gs, const float* S_out, const LinearAttentionDims& m) {
  const int d = m.d, nb = m.block, G = m.H / m.KVH;
  const size_t dd = static_cast<size_t>(d) * d;
  const int nblocks = (m.T + nb - 1) / nb;
  const int nthreads = omp_get_max_threads();
  const size_t slice = slice_floats(m);
  ScratchScope scratch(arena);
  float* slices = scratch.take<float>(nthreads * slice, "gla_add_suffix_grads");
#pragma omp parallel num_threads(nthreads)
  {
    const Buffers t = buffers(slices + omp_get_thread_num() * slice, m);
#pragma omp for schedule(static)
    for (int bg = 0; bg < m.B * m.KVH; ++bg) {
      const int b = bg / m.KVH, g = bg % m.KVH;
      const size_t row0 = static_cast<size_t>(b) * m.T, gd = static_cast<size_t>(g) * d;
      for (int j = 0; j < G; ++j) {
        const int h = g * G + j;
        const size_t bh = static_cast<size_t>(b) * m.H + h, hd = static_cast<size_t>(h) * d;
        const float* Gh = Gs + bh * dd;
        const float* Sh = S_out + bh * dd;
        for (int i = 0; i < d; ++i) {  // S_out's own dependence on the chunk's last gate sum
          double acc = 0.0;
          for (int jj = 0; jj < d; ++jj)
            acc += static_cast<double>(Sh[static_cast<size_t>(i) * d + jj]) * Gh[static_cast<size_t>(i) * d + jj];
          t.acc[i] = acc;
          t.run[i] = 0.0;  // sum of the log gates after the current token
        }
        for (int blk = nblocks - 1; blk >= 0; --blk) {
          const int t0 = blk * nb, c = std::min(nb, m.T - t0);
          const size_t r = row0 + t0;
          const float* Kb = k + r * m.ldk + gd;
          const float* Vb = v + r * m.ldv + gd;
          const float* gb = lg + r * m.ldg + hd;
          for (int s = c - 1; s >= 0; --s)  // X3 = exp(B_last - B_s)
            for (int i = 0; i < d; ++i) {
              t.X3[static_cast<size_t>(s) * d + i] = static_cast<float>(std::exp(t.run[i]));
              t.run[i] += gb[static_cast<size_t>(s) * m.ldg + i];
            }
          gemm(false, true, c, d, d, 1.0f, Vb, m.ldv, Gh, d, 0.0f, t.X1, d);  // V G^T
          for (int s = 0; s < c; ++s)
            for (int i = 0; i < d; ++i) {
              const size_t e = static_cast<size_t>(s) * d + i;
              t.X1[e] *= t.X3[e];
              dk[(r + s) * m.ldk + gd + i] += t.X1[e];
              t.X2[e] = Kb[static_cast<size_t>(s) * m.ldk + i] * t.X3[e];
            }
          gemm(false, false, c, d, d, 1.0f, t.X2, d, Gh, d, 1.0f, dv + r * m.ldv + gd, m.ldv);
          for (int s = c - 1; s >= 0; --s)
            for (int i = 0; i < d; ++i) {
              t.acc[i] -= static_cast<double>(Kb[static_cast<size_t>(s) * m.ldk + i]) * t.X1[static_cast<size_t>(s) * d + i];
              float& dgv = dlg[(r + s) * m.ldg + hd + i];
              dgv = static_cast<float>(dgv + t.acc[i]);
            }
        }
      }
    }
  }
}

void gla_prefix_fold(float* P, float* S_out, const float* gathered, const float* S0, int j, int B, int H, int d) {
  const size_t dd = static_cast<size_t>(d) * d, BH = static_cast<size_t>(B) * H;
  const size_t stride = BH * dd + BH * d;  // one rank's [M | ld]
#pragma omp parallel for schedule(static)
  for (int64_t bhi = 0; bhi < static_cast<int64_t>(BH) * d; ++bhi) {
    const size_t bh = static_cast<size_t>(bhi) / d, i = static_cast<size_t>(bhi) % d;
    for (int jj = 0; jj < d; ++jj) {
      const size_t e = bh * dd + i * d + jj;
      double S = S0 ? S0[e] : 0.0;
      for (int u = 0; u <= j; ++u) {
        const float* base = gathered + static_cast<size_t>(u) * stride;
        if (u == j && P) P[e] = static_cast<float>(S);
        S = std::exp(static_cast<double>(base[BH * dd + bh * d + i])) * S + base[e];
      }
      if (S_out) S_out[e] = static_cast<float>(S);
    }
  }
}

void gla_suffix_fold(float* Gout, const float* gathered_dP, const float* gathered, const float* G_end, int W, int j,
                     int B, int H, int d) {
  const size_t dd = static_cast<size_t>(d) * d, BH = static_cast<size_t>(B) * H;
  const size_t stride = BH * dd + BH * d;
#pragma omp parallel for schedule(static)
  for (int64_t bhi = 0; bhi < static_cast<int64_t>(BH) * d; ++bhi) {
    const size_t bh = static_cast<size_t>(bhi) / d, i = static_cast<size_t>(bhi) % d;
    for (int jj = 0; jj < d; ++jj) {
      double G = G_end ? G_end[bh * dd + i * d + jj] : 0.0;
      for (int u = W - 1; u > j; --u) {
        const double w = std::exp(static_cast<double>(gathered[static_cast<size_t>(u) * stride + BH * dd + bh * d + i]));
        G = gathered_dP[static_cast<size_t>(u) * BH * dd + bh * dd + i * d + jj] + w * G;
      }
      Gout[bh * dd + i * d + jj] = static_cast<float>(G);
    }
  }
}

void gla_gate_forward(float* lg, const float* u, const float* bias, int64_t N, int Hd, float tau) {
  const float inv_tau = 1.0f / tau;
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n)
    for (int c = 0; c < Hd; ++c) {
      const size_t e = static_cast<size_t>(n) * Hd + c;
      const float x = u[e] + bias[c];
      lg[e] = (std::min(x, 0.0f) - std::log1p(std::exp(-std::abs(x)))) * inv_tau;
    }
}

void gla_gate_backward(float* du, float* dbias, const float* dlg, const float* lg, int64_t N, int Hd, float tau) {
  const float inv_tau = 1.0f / tau;
#pragma omp parallel for schedule(static)
  for (int c = 0; c < Hd; ++c) {
    double acc = 0.0;
    for (int64_t n = 0; n < N; ++n) {
      const size_t e = static_cast<size_t>(n) * Hd + c;
      const float g = dlg[e] * -std::expm1(tau * lg[e]) * inv_tau;
      du[e] = g;
      acc += g;
    }
    dbias[c] = static_cast<float>(dbias[c] + acc);
  }
}

}  // namespace lintrain::cpu
