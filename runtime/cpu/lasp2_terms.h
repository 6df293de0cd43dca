// The chunk-boundary terms of LASP-2 (/work/shared/LASP2.md) for one SP rank's
// chunk of C tokens, CPU backend. The blockwise kernel
// (runtime/cpu/linear_attention.h) computes everything that stays inside the
// chunk (call it with state_in = nullptr and dstate_out = nullptr); these
// functions compute what crosses the chunk boundary, so a rank can start the
// AllGather of its state, run the intra-chunk kernel while it is in flight,
// and add the inter-chunk term afterwards:
//
//   forward                              backward
//   M  = (Lk * K)^T V       (send)       dP = (Lq * Q)^T dO        (send)
//   O += (Lq * Q) P         (P: prefix)  dQ += Lq * (dO P^T)
//                                        dK += Lk * (V G^T),  dV += (Lk * K) G   (G: suffix)
//
// per batch b and query head h, with 0-based token i, s = 0..C-1 of the chunk:
//   Lq[i] = lambda_h^(i+1)       decay from the state entering the chunk to token i
//   Lk[s] = lambda_h^(C-1-s)     decay from token s to the state leaving the chunk
// Powers are exp(n log lambda) in double, rounded once to fp32: lambda near 0
// underflows to exact zeros (never NaN), lambda near 1 keeps full precision.
//
// States M, dP, P, G are (B, H, d, d) fp32 per QUERY head (row = key dim):
// the decay is per query head, so two query heads sharing a kv head (GQA)
// have different states. dK, dV of a kv head collect all its query heads.
//
// Shapes and strides are those of LinearAttentionDims with T = C (the chunk):
//   q, dq, o, dout (B, C, H, d) row strides ldq / ldo,
//   k, v, dk, dv   (B, C, KVH, d) row strides ldk / ldv;
// `block` tiles the loops, so scratch is block * d floats per thread whatever C.
// Threads: OpenMP over (b, h), or (b, kv head) for dK/dV, each item summing in
// a fixed order: results are bit-identical for any thread count.
#pragma once

#include "runtime/cpu/linear_attention.h"

namespace lintrain {

// M (B, H, d, d) = (Lk * K)^T V, assigned. The state this chunk leaves behind
// when it starts from zero (= linear_attention_forward's state_out with
// state_in = nullptr, without running the attention itself).
void lasp2_chunk_state(float* M, const float* k, const float* v, const float* decay,
                       const LinearAttentionDims& dims);

// o (B, C, H, d) += (Lq * Q) P for P (B, H, d, d): the prefix state's share of
// the output. Only each head's d columns of o are touched.
void lasp2_add_prefix_output(float* o, const float* q, const float* P, const float* decay,
                             const LinearAttentionDims& dims);

// dP (B, H, d, d) = (Lq * Q)^T dout, assigned: dL/dP for this chunk's outputs.
void lasp2_prefix_state_grad(float* dP, const float* q, const float* dout, const float* decay,
                             const LinearAttentionDims& dims);

// dq (B, C, H, d) += Lq * (dout P^T): the prefix state's share of dQ.
void lasp2_add_prefix_dq(float* dq, const float* dout, const float* P, const float* decay,
                         const LinearAttentionDims& dims);

// dk, dv (B, C, KVH, d) += sum over the query heads h of each kv head of
// Lk * (V G_h^T) and (Lk * K) G_h, for G (B, H, d, d) = dL/dM (the suffix).
// dk and dv may be column ranges of one fused buffer (ldk = ldv).
void lasp2_add_suffix_dkdv(float* dk, float* dv, const float* k, const float* v, const float* G,
                           const float* decay, const LinearAttentionDims& dims);

}  // namespace lintrain
