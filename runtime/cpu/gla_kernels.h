// Building blocks of the CPU gated-linear-attention bodies (runtime/cpu/gla.cpp,
// gla_terms.cpp). One block of c tokens of one head; X, Y, M rows strided,
// Bc (c, d) the block's cumulative log gates (Bc_t = sum_{u<=t} log a_u, <= 0
// and non-increasing in t), dense outputs (c, d) or (c, c).
#pragma once

#include <cstddef>

namespace lintrain::cpu::gla {

// Tokens per sub-block: pairs inside one are weighted pair by pair, pairs
// across two go through a GEMM split at the boundary between them.
constexpr int kSubBlock = 16;

// Bc (c, d) = running sums of the log gates g (c rows, stride ldg), in double.
void cumulative_gates(const float* g, int ldg, int c, int d, float* Bc);

// A (c, c): A[t,s] = sum_i X_ti Y_si exp(Bc_ti - Bc_si) for s <= t, else 0.
// Xs, Ys: scratch of c*d floats each.
void gated_scores(const float* X, int ldx, const float* Y, int ldy, const float* Bc, int c, int d, float* A,
                  float* Xs, float* Ys);

// out (c, d) = sum_{s<=t} M[t,s] Y_s .* exp(Bc_t - Bc_s), M (c, c) lower
// triangular (entries above the diagonal are not read). Ys, tmp: c*d scratch.
void gated_apply(const float* M, const float* Y, int ldy, const float* Bc, int c, int d, float* out, float* Ys,
                 float* tmp);

// out (c, d): out_s = sum_{t>=s} M[t,s] X_t .* exp(Bc_t - Bc_s) (the transposed
// use of a lower-triangular M). Xs, tmp: c*d scratch.
void gated_apply_t(const float* M, const float* X, int ldx, const float* Bc, int c, int d, float* out, float* Xs,
                   float* tmp);

// out (c, d) = X .* exp(E) (ref null) or X .* exp(ref - E) (ref: d values).
void scale_by_exp(const float* X, int ldx, const float* E, const float* ref, int c, int d, float* out);

// S (d, d) <- diag(exp(Bc_last)) S + (K .* exp(Bc_last - Bc))^T V. X: c*d scratch.
void state_update(float* S, const float* Kb, int ldk, const float* Vb, int ldv, const float* Bc, int c, int d,
                  float* X);

// A (c, c) = X Y^T with the entries above the diagonal zeroed.
void masked_products(const float* X, int ldx, const float* Y, int ldy, int c, int d, float* A);

// n floats rounded up to the arena's alignment.
size_t floats(size_t n);

}  // namespace lintrain::cpu::gla
