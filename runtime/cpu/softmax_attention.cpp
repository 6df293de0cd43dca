// CPU causal softmax attention, blockwise over queries (the op and its layout:
// runtime/ops.h). A block of nq queries starting at query t0 sees keys
// [0, nk) with nk = q_offset + t0 + nq, so the GEMMs only touch keys some
// query of the block can see; the causal mask inside the tile is applied by
// zeroing probabilities, which keeps masked keys out of every product exactly
// (0 * finite = 0). Each thread's tiles are its slice of the scratch arena.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>

#include "runtime/arena.h"
#include "runtime/backend.h"
#include "runtime/cpu/gemm.h"

namespace lintrain::cpu {

namespace {

// One query block of one (sequence, query head): pointers to its first rows.
struct Block {
  int t0 = 0;  // first query of the block
  int nq = 0;  // queries in the block
  int nk = 0;  // keys visible to the block's last query
  // Query row i sees keys [0, nk - nq + i + 1).
  int visible(int i) const { return nk - nq + i + 1; }
};

Block make_block(const AttentionDims& a, int blk) {
  Block b;
  b.t0 = blk * a.q_block;
  b.nq = std::min(a.q_block, a.Tq - b.t0);
  b.nk = a.q_offset + b.t0 + b.nq;
  return b;
}

int num_blocks(const AttentionDims& a) { return (a.Tq + a.q_block - 1) / a.q_block; }

size_t row_of(int b, int T, int t) { return static_cast<size_t>(b) * T + t; }

// Floats of one (nq, nk) score tile, and its bytes rounded to the arena's alignment.
size_t tile_floats(const AttentionDims& a) { return static_cast<size_t>(std::min(a.q_block, a.Tq)) * a.Tk; }
size_t tile_bytes(const AttentionDims& a) { return arena_round(tile_floats(a) * sizeof(float)); }

}  // namespace

size_t softmax_attention_forward_scratch_bytes(const AttentionDims& a) {
  return static_cast<size_t>(omp_get_max_threads()) * tile_bytes(a);
}

size_t softmax_attention_backward_scratch_bytes(const AttentionDims& a) {
  return static_cast<size_t>(omp_get_max_threads()) * 2 * tile_bytes(a);
}

void softmax_attention_forward(Arena& arena, const AttentionDims& a, float* o, int ldo, float* lse, const float* q,
                               int ldq, const float* k, int ldk, const float* v, int ldv) {
  const int nblk = num_blocks(a), group = a.H / a.KVH, d = a.d;
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
  const long items = static_cast<long>(a.B) * a.H * nblk;
  if (items == 0) return;
  const int nthreads = omp_get_max_threads();
  const size_t slice = tile_bytes(a) / sizeof(float);
  ScratchScope scratch(arena);
  float* tiles = scratch.take<float>(nthreads * slice, "softmax_attention_forward");
#pragma omp parallel num_threads(nthreads)
  {
    float* S = tiles + omp_get_thread_num() * slice;  // (nq, nk) tile
#pragma omp for schedule(dynamic, 1)
    for (long it = 0; it < items; ++it) {
      // Largest blocks (last in the sequence) first, for load balance.
      const int blk = nblk - 1 - static_cast<int>(it % nblk);
      const int h = static_cast<int>((it / nblk) % a.H);
      const int b = static_cast<int>(it / (static_cast<long>(nblk) * a.H));
      const int kvh = h / group;
      const Block bl = make_block(a, blk);
      const float* q_blk = q + row_of(b, a.Tq, bl.t0) * ldq + h * d;
      const float* k_seq = k + row_of(b, a.Tk, 0) * ldk + kvh * d;
      const float* v_seq = v + row_of(b, a.Tk, 0) * ldv + kvh * d;
      float* s = S;
      gemm(false, true, bl.nq, bl.nk, d, scale, q_blk, ldq, k_seq, ldk, 0.0f, s, bl.nk);
      float* lse_row = lse + (static_cast<size_t>(b) * a.H + h) * a.Tq + bl.t0;
      for (int i = 0; i < bl.nq; ++i) {
        float* si = s + static_cast<size_t>(i) * bl.nk;
        const int vis = bl.visible(i);
        float m = si[0];
        for (int j = 1; j < vis; ++j) m = std::max(m, si[j]);
        double sum = 0.0;  // double: up to Tk terms, and lse feeds every backward probability
        for (int j = 0; j < vis; ++j) {
          si[j] = std::exp(si[j] - m);
          sum += si[j];
        }
        const float inv = static_cast<float>(1.0 / sum);
        for (int j = 0; j < vis; ++j) si[j] *= inv;
        std::fill(si + vis, si + bl.nk, 0.0f);
        lse_row[i] = static_cast<float>(m + std::log(sum));
      }
      gemm(false, false, bl.nq, d, bl.nk, 1.0f, s, bl.nk, v_seq, ldv, 0.0f, o + row_of(b, a.Tq, bl.t0) * ldo + h * d,
           ldo);
    }
  }
}

void softmax_attention_backward(Arena& arena, const AttentionDims& a, float* dq, int lddq, float* dk, int lddk,
                                float* dv, int lddv, const float* dout, int lddo, const float* q, int ldq,
                                const float* k, int ldk, const float* v, int ldv, const float* o, int ldo,
                                const float* lse) {
  const int nblk = num_blocks(a), group = a.H / a.KVH, d = a.d;
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
  const long items = static_cast<long>(a.B) * a.KVH;
  if (items == 0) return;
  const int nthreads = omp_get_max_threads();
  const size_t slice = tile_bytes(a) / sizeof(float);
  ScratchScope scratch(arena);
  float* tiles = scratch.take<float>(nthreads * 2 * slice, "softmax_attention_backward");
#pragma omp parallel num_threads(nthreads)
  {
    float* P = tiles + omp_get_thread_num() * 2 * slice;  // (nq, nk) probabilities
    float* dS = P + slice;                                 // and score gradients
#pragma omp for schedule(dynamic, 1)
    for (long it = 0; it < items; ++it) {
      const int b = static_cast<int>(it / a.KVH), kvh = static_cast<int>(it % a.KVH);
      const float* k_seq = k + row_of(b, a.Tk, 0) * ldk + kvh * d;
      const float* v_seq = v + row_of(b, a.Tk, 0) * ldv + kvh * d;
      float* dk_seq = dk + row_of(b, a.Tk, 0) * lddk + kvh * d;
      float* dv_seq = dv + row_of(b, a.Tk, 0) * lddv + kvh * d;
      // This item owns dk/dv of (b, kvh) exclusively: zero, then accumulate
      // over the group's query heads and blocks in a fixed order.
      for (int j = 0; j < a.Tk; ++j) {
        std::memset(dk_seq + static_cast<size_t>(j) * lddk, 0, sizeof(float) * d);
        std::memset(dv_seq + static_cast<size_t>(j) * lddv, 0, sizeof(float) * d);
      }
      for (int h = kvh * group; h < (kvh + 1) * group; ++h)
        for (int blk = 0; blk < nblk; ++blk) {
          const Block bl = make_block(a, blk);
          const size_t r0 = row_of(b, a.Tq, bl.t0);
          const float* q_blk = q + r0 * ldq + h * d;
          const float* o_blk = o + r0 * ldo + h * d;
          const float* do_blk = dout + r0 * lddo + h * d;
          const float* lse_row = lse + (static_cast<size_t>(b) * a.H + h) * a.Tq + bl.t0;
          float* p = P;
          float* ds = dS;
          // P = exp(S - lse) recomputed; dP = dO V^T.
          gemm(false, true, bl.nq, bl.nk, d, scale, q_blk, ldq, k_seq, ldk, 0.0f, p, bl.nk);
          gemm(false, true, bl.nq, bl.nk, d, 1.0f, do_blk, lddo, v_seq, ldv, 0.0f, ds, bl.nk);
          for (int i = 0; i < bl.nq; ++i) {
            float* pi = p + static_cast<size_t>(i) * bl.nk;
            float* dsi = ds + static_cast<size_t>(i) * bl.nk;
            const int vis = bl.visible(i);
            // D_i = rowsum(dO .* O) = sum_j P_ij dP_ij: the P P^T part of the softmax Jacobian.
            double D = 0.0;
            for (int c = 0; c < d; ++c) D += static_cast<double>(do_blk[static_cast<size_t>(i) * lddo + c]) *
                                             o_blk[static_cast<size_t>(i) * ldo + c];
            const float Di = static_cast<float>(D);
            for (int j = 0; j < vis; ++j) {
              pi[j] = std::exp(pi[j] - lse_row[i]);
              dsi[j] = pi[j] * (dsi[j] - Di);
            }
            std::fill(pi + vis, pi + bl.nk, 0.0f);
            std::fill(dsi + vis, dsi + bl.nk, 0.0f);
          }
          // dQ = dS K * scale (assigned), dK += dS^T Q * scale, dV += P^T dO.
          gemm(false, false, bl.nq, d, bl.nk, scale, ds, bl.nk, k_seq, ldk, 0.0f, dq + r0 * lddq + h * d, lddq);
          gemm(true, false, bl.nk, d, bl.nq, scale, ds, bl.nk, q_blk, ldq, 1.0f, dk_seq, lddk);
          gemm(true, false, bl.nk, d, bl.nq, 1.0f, p, bl.nk, do_blk, lddo, 1.0f, dv_seq, lddv);
        }
    }
  }
}

}  // namespace lintrain::cpu
