// CPU causal softmax attention, blockwise over queries (see the header for the
// layout and the determinism argument). A block of nq queries starting at
// query t0 sees keys [0, nk) with nk = q_offset + t0 + nq, so the GEMMs only
// touch keys some query of the block can see; the causal mask inside the tile
// is applied by zeroing probabilities, which keeps masked keys out of every
// product exactly (0 * finite = 0).
#include "runtime/cpu/softmax_attention.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <vector>

#include "runtime/cpu/gemm.h"
#include "runtime/error.h"

namespace lintrain {

namespace {

void check_dims(const char* op, const AttentionDims& a, int ldq, int ldk, int ldv, int ldo) {
  LT_CHECK(a.B >= 0 && a.Tq >= 0 && a.Tk >= 0, "[", op, "] negative size B=", a.B, " Tq=", a.Tq, " Tk=", a.Tk);
  LT_CHECK(a.H > 0 && a.KVH > 0 && a.H % a.KVH == 0, "[", op, "] query heads H=", a.H,
           " must be a positive multiple of kv heads KVH=", a.KVH);
  LT_CHECK(a.d > 0, "[", op, "] head dimension d must be > 0, got ", a.d);
  LT_CHECK(a.q_block > 0, "[", op, "] q_block must be > 0, got ", a.q_block);
  LT_CHECK(a.q_offset >= 0 && a.Tk >= a.q_offset + a.Tq, "[", op, "] queries at positions [", a.q_offset, ", ",
           a.q_offset + a.Tq, ") need keys up to there, but Tk=", a.Tk, " (need Tk >= q_offset + Tq)");
  LT_CHECK(ldq >= a.H * a.d && ldo >= a.H * a.d, "[", op, "] q/o row strides (", ldq, ", ", ldo,
           ") must be >= H*d = ", a.H * a.d);
  LT_CHECK(ldk >= a.KVH * a.d && ldv >= a.KVH * a.d, "[", op, "] k/v row strides (", ldk, ", ", ldv,
           ") must be >= KVH*d = ", a.KVH * a.d);
}

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

}  // namespace

void softmax_attention_forward(const AttentionDims& a, float* o, int ldo, float* lse, const float* q, int ldq,
                               const float* k, int ldk, const float* v, int ldv) {
  check_dims("softmax_attention_forward", a, ldq, ldk, ldv, ldo);
  const int nblk = num_blocks(a), group = a.H / a.KVH, d = a.d;
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
  const long items = static_cast<long>(a.B) * a.H * nblk;
  if (items == 0) return;
#pragma omp parallel
  {
    std::vector<float> S(static_cast<size_t>(std::min(a.q_block, a.Tq)) * a.Tk);  // (nq, nk) tile
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
      float* s = S.data();
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

void softmax_attention_backward(const AttentionDims& a, float* dq, int lddq, float* dk, int lddk, float* dv,
                                int lddv, const float* dout, int lddo, const float* q, int ldq, const float* k,
                                int ldk, const float* v, int ldv, const float* o, int ldo, const float* lse) {
  const char* name = "softmax_attention_backward";
  check_dims(name, a, ldq, ldk, ldv, ldo);
  LT_CHECK(lddq >= a.H * a.d && lddo >= a.H * a.d, "[", name, "] dq/dout row strides (", lddq, ", ", lddo,
           ") must be >= H*d = ", a.H * a.d);
  LT_CHECK(lddk >= a.KVH * a.d && lddv >= a.KVH * a.d, "[", name, "] dk/dv row strides (", lddk, ", ", lddv,
           ") must be >= KVH*d = ", a.KVH * a.d);
  const int nblk = num_blocks(a), group = a.H / a.KVH, d = a.d;
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));
  const long items = static_cast<long>(a.B) * a.KVH;
  if (items == 0) return;
#pragma omp parallel
  {
    const size_t tile = static_cast<size_t>(std::min(a.q_block, a.Tq)) * a.Tk;
    std::vector<float> P(tile), dS(tile);  // (nq, nk) probabilities and score gradients
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
          float* p = P.data();
          float* ds = dS.data();
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

}  // namespace lintrain
