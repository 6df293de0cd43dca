// Causal linear attention with a per-head scalar decay, computed blockwise
// (Lightning Attention-2): an exact masked product inside each block plus a
// running d x d state between blocks, so the cost is O(T * block * d + T * d^2)
// instead of O(T^2 d), with no cumsum over T. This is the single-rank version
// of the chunked math in /work/shared/LASP2.md; the initial/final state
// arguments are the boundary-state API that LASP-2 builds on (a rank passes the
// prefix state of the earlier ranks as state_in).
//
// Per batch b and query head h (kv head g = h / (H / KVH), grouped-query):
//     S_t = lambda_h S_{t-1} + k_t^T v_t      S_0 = state_in (or 0), d x d, fp32
//     o_t = q_t S_t                           (the current token is included)
// Per block of c <= block tokens (the last block may be shorter), 0-based i, s:
//     D[i,s] = lambda^(i-s) for i >= s else 0,  Lq[i] = lambda^(i+1),  Lk[s] = lambda^(c-1-s)
//     O_b = ((Q_b K_b^T) .* D) V_b + (Lq * Q_b) S
//     S   = lambda^c S + (Lk * K_b)^T V_b
// Powers of lambda are exp(n log lambda): lambda near 0 underflows to 0, never NaN.
// The diagonal block is a full c x c product masked afterwards: finite future
// tokens never reach earlier outputs (exact zeros), but a NaN/Inf value in a
// future v of the same block would (0 * NaN); inputs are assumed finite.
//
// Threads: OpenMP over (b, kv head); the query heads of a group run inside one
// iteration, so dk/dv of a shared kv head are accumulated by one thread in a
// fixed order: results are bit-identical run to run and for any thread count.
#pragma once

namespace lintrain {

struct LinearAttentionDims {
  int B = 0;      // batch
  int T = 0;      // tokens per sequence (any T >= 0; need not divide by block)
  int H = 0;      // query heads
  int KVH = 0;    // key/value heads; H % KVH == 0
  int d = 0;      // head dim, d_k = d_v = d
  int block = 64; // Lightning-2 block length, >= 1
  // Row strides in elements between consecutive tokens (>= heads * d), so a
  // head's rows can be read straight out of a fused [q | k | v] buffer.
  int ldq = 0, ldk = 0, ldv = 0, ldo = 0;
};

// o        (B, T, H, d)   out, row stride ldo: head h of token t of batch b at o + (b*T + t)*ldo + h*d
// q        (B, T, H, d)   row stride ldq
// k, v     (B, T, KVH, d) row strides ldk, ldv
// decay    (H)            lambda_h in (0, 1]; 1 = no decay
// state_in (B, H, d, d)   initial state S_0 (row = key dim); nullptr = zeros
// state_out(B, H, d, d)   final state S_T; nullptr = not wanted. May alias state_in.
// Only the d columns of each head are written in o; o must not alias q, k, v.
void linear_attention_forward(float* o, const float* q, const float* k, const float* v,
                              const float* decay, const float* state_in, float* state_out,
                              const LinearAttentionDims& dims);

// Gradients of L(o, state_out) given dout = dL/do and dstate_out = dL/dS_T.
// dq (B, T, H, d) row stride ldq; dk, dv (B, T, KVH, d) row strides ldk, ldv:
//   assigned (=), only their heads' d columns are written, so they may live
//   in one fused [dq | dk | dv] buffer; they must not alias the inputs.
// dout      (B, T, H, d)  row stride ldo
// dstate_out(B, H, d, d)  nullptr = zero
// dstate_in (B, H, d, d)  dL/dS_0, assigned; nullptr = not wanted
// q, k, v, decay, state_in: the forward's inputs.
// Memory: nothing is saved by the forward. The backward runs two sweeps per
// (b, h): forward over blocks rebuilding the entering state P (for dq), then
// backward over blocks carrying the state gradient G (for dk, dv). It needs
// only per-thread scratch of 2*block^2 + block*d + d^2 + 2*block + 1 floats,
// independent of T; the extra cost is one d x d x c product per block.
void linear_attention_backward(float* dq, float* dk, float* dv, float* dstate_in,
                               const float* dout, const float* dstate_out, const float* q,
                               const float* k, const float* v, const float* decay,
                               const float* state_in, const LinearAttentionDims& dims);

}  // namespace lintrain
