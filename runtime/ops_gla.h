// Gated linear attention (GLA, Yang et al. 2023, arXiv:2312.06635): linear
// attention whose forgetting is a per-token, per-key-dimension gate. The math
// and the chunkwise form: docs/gated_linear_attention.md.
//
// Per batch b and query head h (kv head g = h / (H / KVH), grouped-query):
//     S_t = diag(a_t) S_{t-1} + k_t^T v_t      S_0 = state_in (or 0), d x d fp32
//     o_t = q_t S_t                           (row i of S = key dimension i)
// with a_t = exp(log_gate_t), log_gate (B, T, H, d): one gate per QUERY head
// and key dimension, every value finite and <= 0 (checked on the CPU). The
// ops take log gates, not gates: everything is computed from differences of
// their cumulative sums, so a gate near 0 (log -> very negative) underflows
// to exact zeros and never overflows, and a gate near 1 keeps full precision.
//
// Chunkwise form (block of c tokens, 0-based t, s; Bc_t = sum_{u<=t} log_gate_u
// within the block, per key dimension i):
//     O    = A V + (Q .* exp(Bc)) S_in,     A[t,s] = sum_i q_ti k_si exp(Bc_ti - Bc_si), s <= t
//     S_out = diag(exp(Bc_last)) S_in + (K .* exp(Bc_last - Bc))^T V
// A is built from 16-token sub-blocks: between two different sub-blocks the
// factor exp(Bc_t - Bc_s) splits at the boundary r between them into
// exp(Bc_t - r) exp(r - Bc_s), both <= 1, so that part is one GEMM on rescaled
// q and k with no overflow whatever the gates; inside a sub-block the factor
// is applied pair by pair (the secondary level of the GLA paper).
//
// The shapes and strides are LinearAttentionDims' (runtime/ops.h); ldg is the
// row stride of log_gate and dlog_gate (>= H d). Threads: over (b, kv head),
// the query heads of a group inside one work item, so results are
// bit-identical run to run and for any thread count.
//
// Only the CPU backend has these ops today: on CUDA they throw an Error saying
// so (the config refuses variant gla with run.device cuda before that).
#pragma once

#include <cstddef>

#include "runtime/ops.h"

namespace lintrain {

// o (B, T, H, d) row stride ldo; state_out may alias state_in; nullptr state_in
// = zeros, nullptr state_out = not wanted. Needs gla_forward_scratch_bytes.
void gla_forward(const Context& ctx, float* o, const float* q, const float* k, const float* v, const float* log_gate,
                 const float* state_in, float* state_out, const LinearAttentionDims& dims);
size_t gla_forward_scratch_bytes(Device device, const LinearAttentionDims& dims);

// Gradients of L(o, state_out): dq, dk, dv and dlog_gate are assigned (=) in
// their heads' columns; dstate_in = dL/dS_0 (nullptr = not wanted); dstate_out
// nullptr = zero. Nothing is saved by the forward: a first sweep over the
// blocks rebuilds the entering states (dq), a second one walks back carrying
// dL/dS (dk, dv), and
//     dlog_gate_t = sum_{u >= t} (q_u .* dq_u - k_u .* dk^h_u) + rowsum(S_T .* dS_T)
// (dk^h: head h's own share of dk), accumulated in double from the end.
// Needs gla_backward_scratch_bytes.
void gla_backward(const Context& ctx, float* dq, float* dk, float* dv, float* dlog_gate, float* dstate_in,
                  const float* dout, const float* dstate_out, const float* q, const float* k, const float* v,
                  const float* log_gate, const float* state_in, const LinearAttentionDims& dims);
size_t gla_backward_scratch_bytes(Device device, const LinearAttentionDims& dims);

// ---- Gated LASP-2 chunk-boundary terms (docs/gated_linear_attention.md) -------
// For one SP rank's chunk of C tokens (dims.T = C). Chunk j maps the state
// entering it to S_out = diag(exp(ld_j)) S_in + M_j; with B_t the cumulative
// log gate from the chunk's start (double):
//   gla_chunk_state        M (B, H, d, d) = the state the chunk builds from zero,
//                          log_decay (B, H, d) = ld_j = the chunk's summed log gates
//   gla_add_prefix_output  o += (Q .* exp(B)) P              (P: state entering the chunk)
//   gla_prefix_state_grad  dP = (Q .* exp(B))^T dout, assigned
//   gla_add_suffix_grads   with G = dL/dS_out and S_out = the state leaving the chunk:
//                          dk += exp(B_last - B) .* (V G^T),  dv += (K .* exp(B_last - B)) G,
//                          dlog_gate_t += sum_{u >= t} (-k_u .* (that dk share)_u) + rowsum(S_out .* G)
// (dq's share of P is gla_backward's, called with state_in = P.) States are
// per query head; dk, dv of a kv head collect its query heads in order.
void gla_chunk_state(const Context& ctx, float* M, float* log_decay, const float* k, const float* v,
                     const float* log_gate, const LinearAttentionDims& dims);
void gla_add_prefix_output(const Context& ctx, float* o, const float* q, const float* log_gate, const float* P,
                           const LinearAttentionDims& dims);
void gla_prefix_state_grad(const Context& ctx, float* dP, const float* q, const float* log_gate, const float* dout,
                           const LinearAttentionDims& dims);
void gla_add_suffix_grads(const Context& ctx, float* dk, float* dv, float* dlog_gate, const float* k, const float* v,
                          const float* log_gate, const float* G, const float* S_out, const LinearAttentionDims& dims);
size_t gla_terms_scratch_bytes(Device device, const LinearAttentionDims& dims);

// The folds over the gathered chunk maps, per (b, h, i, j) in double, rank order:
//   gathered (W, B, H, d*d + d): rank u's [M_u (B, H, d, d) | ld_u (B, H, d)]
//     (the layout of gla_chunk_state's M and log_decay, one after the other);
//   gla_prefix_fold: P = the state entering chunk j   (fold S <- diag(exp(ld_u)) S + M_u over u < j,
//                    from S0 = the state entering the whole sequence, nullptr = 0),
//                    S_out = the state leaving it     (the same fold over u <= j);
//                    either may be nullptr (not wanted); j = W-1 with S_out gives the final state;
//   gla_suffix_fold: G = dL/dS_out of chunk j         (fold G <- dP_u + diag(exp(ld_u)) G over u = W-1 .. j+1,
//                    from G_end = dL/d(final state), nullptr = 0), with dP gathered (W, B, H, d, d);
//                    j = -1 gives dL/dS0.
void gla_prefix_fold(const Context& ctx, float* P, float* S_out, const float* gathered, const float* S0, int W,
                     int j, int B, int H, int d);
void gla_suffix_fold(const Context& ctx, float* G, const float* gathered_dP, const float* gathered,
                     const float* G_end, int W, int j, int B, int H, int d);

// ---- The forget gate of a GLA layer --------------------------------------------
// log_gate (N, Hd) = logsigmoid(u + bias) / tau for u (N, Hd) (may alias
// log_gate) and bias (Hd): a_t = sigmoid(.)^(1/tau), the paper's
// normaliser. logsigmoid(x) = min(x, 0) - log1p(exp(-|x|)): finite for every
// finite x.
void gla_gate_forward(const Context& ctx, float* log_gate, const float* u, const float* bias, int64_t N, int Hd,
                      float tau);
// du (N, Hd) = dlog_gate * (1 - exp(tau log_gate)) / tau (the forward's output
// is all it needs: sigmoid(x) = exp(tau log_gate)); du may alias dlog_gate.
// dbias (Hd) += column sums of du, in double in row order.
void gla_gate_backward(const Context& ctx, float* du, float* dbias, const float* dlog_gate, const float* log_gate,
                       int64_t N, int Hd, float tau);

}  // namespace lintrain
