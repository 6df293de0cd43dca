// The op interface: every compute op of lintrain declared once. Layers,
// optimizers and the parallel code call these and nothing below them.
//
// An op takes a Context (device, stream, scratch arena) and raw pointers with
// their dimensions in llm.c's style (B, T, C, F, V, N = B*T rows); every
// pointer lives on ctx.device. The op checks its arguments in one place
// (runtime/ops.cpp; errors start with "[op_name]" and show the sizes) and
// runs the body of its device: runtime/cpu/<op>.cpp or runtime/cuda/<op>.cu.
// A build without CUDA links runtime/no_cuda, whose bodies throw
// "[op_name] has no CUDA implementation (built without CUDA)".
//
// Conventions: activation gradients are assigned (=) unless a comment says
// they accumulate; parameter gradients accumulate (+=). CPU bodies are
// deterministic for any thread count (fixed reduction orders).
#pragma once

#include <cstddef>
#include <cstdint>

#include "runtime/context.h"
#include "runtime/rope_table.h"

namespace lintrain {

// ---- RMSNorm (Llama): out = inp / sqrt(mean(inp^2) + eps) * weight, per row ----

// out (N, C), rstd (N) saved for backward, inp (N, C), weight (C) or null for
// the parameter-free form (weight = 1).
void rmsnorm_forward(const Context& ctx, float* out, float* rstd, const float* inp, const float* weight, int N,
                     int C, float eps);
// dinp (N, C) += gradient through the norm (accumulates: every norm's input is
// the residual stream, whose gradient is a sum); dweight (C) += sum over rows
// of dout * inp * rstd (skipped when null). Needs rmsnorm_backward_scratch_bytes.
void rmsnorm_backward(const Context& ctx, float* dinp, float* dweight, const float* dout, const float* inp,
                      const float* weight, const float* rstd, int N, int C);
size_t rmsnorm_backward_scratch_bytes(Device device, int N, int C);

// ---- SwiGLU (the Llama MLP's activation): h = silu(gate) * up -----------------
// The gate and up projections are one GEMM whose rows are [gate (F) | up (F)].

// h (N, F) = silu(gate_up[:, :F]) * gate_up[:, F:]      gate_up (N, 2F)
void swiglu_forward(const Context& ctx, float* h, const float* gate_up, int N, int F);
// dgate_up (N, 2F) = gradient of h w.r.t. [gate | up]
void swiglu_backward(const Context& ctx, float* dgate_up, const float* dh, const float* gate_up, int N, int F);

// ---- Memory on the op's device -----------------------------------------------------

// dst[0, n) = src[0, n) (floats, non-overlapping), and dst[0, n) = 0.
void copy_floats(const Context& ctx, float* dst, const float* src, int64_t n);
void zero_floats(const Context& ctx, float* dst, int64_t n);
// rows x cols floats between row-strided matrices: dst[r * ldd + c] =
// src[r * lds + c] (ldd, lds >= cols; the ranges must not overlap).
void copy_rows(const Context& ctx, float* dst, int64_t ldd, const float* src, int64_t lds, int64_t rows,
               int64_t cols);

// ---- Matrix multiply (every projection, the output head) ----------------------

// C (M, N) = alpha * op(A) (M, K) @ op(B) (K, N) + beta * C, row-major, where
// op(X) = X or X^T and lda/ldb/ldc are row strides of the stored (untransposed)
// matrices, so a head's slice of a [T, H*d] activation is a pointer plus
// ld = H*d. FP32 in and out; the CPU runs OpenBLAS, CUDA cuBLAS (FP32 math).
void matmul(const Context& ctx, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A,
            int lda, const float* B, int ldb, float beta, float* C, int ldc);

// The same product with BF16 operands and FP32 accumulation (the GEMM of
// precision.compute: bf16). A and B must hold bf16 values stored as f32 (the
// caller rounds them with round_to_bf16), so their products are exact in f32
// and only the order of the FP32 sums differs between devices. The CPU runs
// the FP32 GEMM on them (which is exactly that arithmetic); CUDA packs A and B
// to bf16 in ctx.scratch (a lossless cast) and multiplies on the tensor cores
// with cuBLAS (CUBLAS_COMPUTE_32F). C stays f32. Needs
// matmul_bf16_scratch_bytes of scratch.
void matmul_bf16(const Context& ctx, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A,
                 int lda, const float* B, int ldb, float beta, float* C, int ldc);
size_t matmul_bf16_scratch_bytes(Device device, int M, int N, int K);

// Which of the two a layer's GEMMs use.
enum class GemmPrecision { fp32, bf16 };
inline void matmul(const Context& ctx, GemmPrecision precision, bool trans_a, bool trans_b, int M, int N, int K,
                   float alpha, const float* A, int lda, const float* B, int ldb, float beta, float* C, int ldc) {
  if (precision == GemmPrecision::bf16) matmul_bf16(ctx, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  else matmul(ctx, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

// ---- Casts ----------------------------------------------------------------------

// out[i] = x rounded to the nearest bf16 (ties to even), kept in f32; n >= 0.
// out may equal in (in place). The bf16 compute mode's operand rounding.
void round_to_bf16(const Context& ctx, float* out, const float* in, int64_t n);

// ---- RoPE (the softmax layers' rotary position embedding; runtime/rope_table.h) --

// In place on x: B sequences of T tokens, each token a row of `heads` heads of
// table.head_dim() floats at row stride ldx (>= heads * head_dim; columns past
// heads * head_dim are untouched). Token t is at absolute position
// pos_offset + t, which the table must cover; the table lives on ctx.device.
void rope_forward(const Context& ctx, float* x, int ldx, int B, int T, int heads, int pos_offset,
                  const RopeTable& table);
// The transpose (= inverse) of rope_forward, in place on a gradient of the same layout.
void rope_backward(const Context& ctx, float* dx, int lddx, int B, int T, int heads, int pos_offset,
                   const RopeTable& table);

// ---- Cross-entropy over rows of logits (the output head's loss) ----------------

// For each of `rows` rows of logits (rows, V) with target t = targets[r]
// (-1 = not counted, else in [0, V)): row_loss[r] = logsumexp(z) - z[t] in
// double (0 when not counted) and row_correct[r] = (argmax z == t), the first
// maximum winning ties. With want_grad the row is replaced by its gradient
// grad_scale * (softmax(z) - onehot(t)) (zeros when not counted). The sums
// over a row run in double in index order.
void cross_entropy_rows(const Context& ctx, float* logits, double* row_loss, int32_t* row_correct,
                        const int32_t* targets, int rows, int V, float grad_scale, bool want_grad);

// ---- The per-token parts of a linear-attention layer (layers/linear_attention.h) --

enum class FeatureMap { identity, elu1, silu, relu };

// N token rows of the fused projection, W = (H + 2 KVH) d floats each:
// [q (Hd = H d) | k (KVH d) | v (KVH d)]; QK = (H + KVH) d.
struct LinearAttentionLayout {
  int64_t N = 0;
  int W = 0, QK = 0, Hd = 0, H = 0, d = 0;
  FeatureMap feature_map = FeatureMap::identity;
  float key_scale = 1.0f;  // k <- key_scale * phi(k)
  float eps = 1e-5f;       // of the per-head output norm
};

// feat (N, W) = [phi(q) | key_scale * phi(k) | v]; pre (N, QK) = the raw q|k
// when not null (silu's derivative needs its input; the other maps' are
// recovered from feat).
void linear_attention_features_forward(const Context& ctx, float* feat, float* pre, const float* qkv,
                                       const LinearAttentionLayout& l);
// In place on the q|k columns of dqkv (N, W): the kernel's dq|dk times
// key_scale * phi'. Needs pre for silu.
void linear_attention_features_backward(const Context& ctx, float* dqkv, const float* feat, const float* pre,
                                        const LinearAttentionLayout& l);
// After the kernel, y (N, Hd) holds its output. With rstd (N, H): each head of
// y is normalised in place, y <- y / sqrt(mean(y^2) + eps) (sum in double),
// and rstd keeps the factors. With g (N, Hd): out = y * silu(g) and g_saved
// (N, Hd) keeps a copy of g; without: out = y.
void linear_attention_output_forward(const Context& ctx, float* out, float* y, float* rstd, float* g_saved,
                                     const float* g, const LinearAttentionLayout& l);
// dy (N, Hd) = dL/d(kernel output) from dout (N, Hd), through the gate (when
// g_saved: dg (N, Hd) = dL/dg, assigned) and the norm (when rstd), with the
// forward's y (after the norm), rstd and g_saved.
void linear_attention_output_backward(const Context& ctx, float* dy, float* dg, const float* dout, const float* y,
                                      const float* rstd, const float* g_saved, const LinearAttentionLayout& l);

// ---- Token embedding: row lookup in wte (V, C) ------------------------------------

// out (N, C) = wte[tokens[n]]. Every id must be in [0, V): checked here on the
// CPU (an Error naming the id and position); callers on other devices check
// the host copy of the tokens before uploading it (LinearLlama does).
void embedding_forward(const Context& ctx, float* out, const int32_t* tokens, const float* wte, int N, int C, int V);
// dwte (V, C) += scatter of dout (N, C) by token id, in token order (deterministic).
void embedding_backward(const Context& ctx, float* dwte, const float* dout, const int32_t* tokens, int N, int C);

// Throws Error naming the first id outside [0, V) of host `tokens` (N).
void check_token_ids(const int32_t* tokens, int N, int V);

}  // namespace lintrain

// ==== Attention cores and the LASP-2 terms (runtime/ops_attention.cpp) ========
// Bodies: runtime/{cpu,cuda}/softmax_attention, linear_attention, lasp2_terms.
// Every float pointer, decay included, lives on ctx.device. Decay values are
// checked on the CPU; on other devices the caller checks its host copy (the
// layers check theirs when they are built). Each op that needs scratch says
// how much (`*_scratch_bytes(device, dims)`, for the thread count of the
// caller's next OpenMP region on the CPU); the owner of ctx.scratch reserves
// the largest it will run (the attention layers do in their constructors).

namespace lintrain {

// ---- Causal softmax attention, grouped-query (GQA), FlashAttention style ----
// It never holds a T x T score matrix: the CPU splits the work into blocks of
// `q_block` queries of one (sequence, head) with one q_block x Tk score tile
// per thread; the backward recomputes the probabilities from the saved row
// log-sum-exp instead of storing them.
//
// Layout (all row-major with explicit row strides, in floats):
//   q    (B, Tq, H,   d)  head h of query t of sequence b at q + (b*Tq + t)*ldq + h*d
//   k, v (B, Tk, KVH, d)  likewise with ldk / ldv; query head h reads kv head
//                         h / (H / KVH)
//   o    (B, Tq, H,   d)  stride ldo
//   lse  (B, H, Tq)       contiguous; lse = log sum_j exp(s_j) of each query row
// Query t sits at position q_offset + t among the keys (keys are at positions
// 0..Tk-1) and attends keys 0..q_offset+t; so Tk >= q_offset + Tq. A single
// rank uses q_offset = 0, Tk = Tq. Under LASP-2H a rank passes its chunk of
// queries with q_offset = rank * chunk against the all-gathered keys/values.
// Scores are scaled by 1/sqrt(d).
//
// Determinism: the forward splits over (b, h, query block), the backward over
// (b, kv head) with the group's query heads and blocks in a fixed order
// inside, so dK/dV accumulate without races or atomics (CUDA: one block per
// (b, kv head, key tile) sums its query heads in order). On the CPU each work
// item runs on one thread with single-threaded GEMMs, so results are
// bit-identical run to run and for any thread count; the backward uses at
// most B * KVH threads.
struct AttentionDims {
  int B = 0;         // sequences
  int Tq = 0;        // queries per sequence
  int Tk = 0;        // keys/values per sequence, >= q_offset + Tq
  int H = 0;         // query heads
  int KVH = 0;       // key/value heads, divides H
  int d = 0;         // head dimension of q, k and v
  int q_offset = 0;  // position of query 0 among the keys, >= 0
  int q_block = 64;  // queries per CPU work item; CPU scratch is 2 * q_block * Tk floats per thread
};

// o = softmax(mask(q k^T / sqrt(d))) v and the row log-sum-exp lse (B, H, Tq)
// that the backward needs. o and lse are assigned. Errors name the bad
// dimension or stride. Needs softmax_attention_forward_scratch_bytes.
void softmax_attention_forward(const Context& ctx, const AttentionDims& dims, float* o, int ldo, float* lse,
                               const float* q, int ldq, const float* k, int ldk, const float* v, int ldv);
size_t softmax_attention_forward_scratch_bytes(Device device, const AttentionDims& dims);

// Gradients of the forward given dout = dL/do, the forward's inputs, its
// output o and its lse. dq (layout of q), dk, dv (layout of k, v) are
// assigned (=), including zeros for keys no query sees; accumulate into
// parameter gradients elsewhere. Output buffers must not overlap the inputs.
// Needs softmax_attention_backward_scratch_bytes.
void softmax_attention_backward(const Context& ctx, const AttentionDims& dims, float* dq, int lddq, float* dk,
                                int lddk, float* dv, int lddv, const float* dout, int lddo, const float* q, int ldq,
                                const float* k, int ldk, const float* v, int ldv, const float* o, int ldo,
                                const float* lse);
size_t softmax_attention_backward_scratch_bytes(Device device, const AttentionDims& dims);

// ---- Causal linear attention with a per-head scalar decay ---------------------
// Blockwise (Lightning Attention-2) on the CPU: an exact masked product inside
// each block plus a running d x d state between blocks, so the cost is
// O(T * block * d + T * d^2) instead of O(T^2 d), with no cumsum over T. This
// is the single-rank version of the chunked math in docs/lasp2.md; the
// initial/final state arguments are the boundary-state API that LASP-2 builds
// on (a rank passes the prefix state of the earlier ranks as state_in).
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
// (The CUDA body runs the recurrence token by token with the d x d state in
// one block's shared memory: the same function up to fp32 rounding, for head
// dims whose state fits there, d <= 225 on H100/H200; its launcher names the
// limit otherwise.)
//
// Threads: over (b, kv head); the query heads of a group run inside one
// work item, so dk/dv of a shared kv head are accumulated by one thread (CUDA:
// one block) in a fixed order: results are bit-identical run to run and, on
// the CPU, for any thread count.
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
  int ldg = 0;  // row stride of the log gates of gated linear attention (runtime/ops_gla.h); else unused
};

// o        (B, T, H, d)   out, row stride ldo: head h of token t of batch b at o + (b*T + t)*ldo + h*d
// q        (B, T, H, d)   row stride ldq
// k, v     (B, T, KVH, d) row strides ldk, ldv
// decay    (H)            lambda_h in (0, 1]; 1 = no decay
// state_in (B, H, d, d)   initial state S_0 (row = key dim); nullptr = zeros
// state_out(B, H, d, d)   final state S_T; nullptr = not wanted. May alias state_in.
// Only the d columns of each head are written in o; o must not alias q, k, v.
// Needs linear_attention_forward_scratch_bytes.
void linear_attention_forward(const Context& ctx, float* o, const float* q, const float* k, const float* v,
                              const float* decay, const float* state_in, float* state_out,
                              const LinearAttentionDims& dims);
size_t linear_attention_forward_scratch_bytes(Device device, const LinearAttentionDims& dims);

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
// backward over blocks carrying the state gradient G (for dk, dv). On the CPU
// it needs per-thread scratch of 2*block^2 + block*d + d^2 + 2*block + 1
// floats, independent of T (linear_attention_backward_scratch_bytes); the
// extra cost is one d x d x c product per block.
void linear_attention_backward(const Context& ctx, float* dq, float* dk, float* dv, float* dstate_in,
                               const float* dout, const float* dstate_out, const float* q, const float* k,
                               const float* v, const float* decay, const float* state_in,
                               const LinearAttentionDims& dims);
size_t linear_attention_backward_scratch_bytes(Device device, const LinearAttentionDims& dims);

// ---- LASP-2 chunk-boundary terms (docs/lasp2.md) --------------------------------
// For one SP rank's chunk of C tokens. linear_attention_forward/backward
// compute everything that stays inside the chunk (call them with state_in =
// nullptr and dstate_out = nullptr); these compute what crosses the chunk
// boundary, so a rank can start the AllGather of its state, run the
// intra-chunk kernel while it is in flight, and add the inter-chunk term after:
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
// `block` tiles the CPU loops, so CPU scratch is block * (d + 1) floats per
// thread whatever C: each of the five needs lasp2_terms_scratch_bytes.
// Threads: over (b, h), or (b, kv head) for dK/dV, each item summing in a
// fixed order: results are bit-identical run to run (and, on the CPU, for any
// thread count).

// M (B, H, d, d) = (Lk * K)^T V, assigned. The state this chunk leaves behind
// when it starts from zero (= linear_attention_forward's state_out with
// state_in = nullptr, without running the attention itself).
void lasp2_chunk_state(const Context& ctx, float* M, const float* k, const float* v, const float* decay,
                       const LinearAttentionDims& dims);

// o (B, C, H, d) += (Lq * Q) P for P (B, H, d, d): the prefix state's share of
// the output. Only each head's d columns of o are touched.
void lasp2_add_prefix_output(const Context& ctx, float* o, const float* q, const float* P, const float* decay,
                             const LinearAttentionDims& dims);

// dP (B, H, d, d) = (Lq * Q)^T dout, assigned: dL/dP for this chunk's outputs.
void lasp2_prefix_state_grad(const Context& ctx, float* dP, const float* q, const float* dout, const float* decay,
                             const LinearAttentionDims& dims);

// dq (B, C, H, d) += Lq * (dout P^T): the prefix state's share of dQ.
void lasp2_add_prefix_dq(const Context& ctx, float* dq, const float* dout, const float* P, const float* decay,
                         const LinearAttentionDims& dims);

// dk, dv (B, C, KVH, d) += sum over the query heads h of each kv head of
// Lk * (V G_h^T) and (Lk * K) G_h, for G (B, H, d, d) = dL/dM (the suffix).
// dk and dv may be column ranges of one fused buffer (ldk = ldv).
void lasp2_add_suffix_dkdv(const Context& ctx, float* dk, float* dv, const float* k, const float* v,
                           const float* G, const float* decay, const LinearAttentionDims& dims);

// Scratch of any one of the five terms above.
size_t lasp2_terms_scratch_bytes(Device device, const LinearAttentionDims& dims);

// ---- LASP-2 state merges: the decayed prefix / suffix of the gathered states ----
// gathered (W, B, H, d, d) rank-major as AllGather returns it; decay (H); C the
// chunk length; j this rank's chunk; out (B, H, d, d) assigned:
//   lasp2_prefix_states: out = sum_{u<j} lambda_h^(C (j-1-u)) gathered[u]   (P_j, forward)
//   lasp2_suffix_states: out = sum_{u>j} lambda_h^(C (u-1-j)) gathered[u]   (G_j, backward)
// Weights are exp(n log lambda) in double, so lambda^n underflows to 0 for
// lambda near 0 (a chunk sees only its neighbour's state, which is right) and
// never yields NaN; each element is summed in double over the W terms in
// rank order (deterministic) and stored in fp32. Both need
// lasp2_merge_states_scratch_bytes.
void lasp2_prefix_states(const Context& ctx, float* out, const float* gathered, int W, int j, int B, int H, int d,
                         int C, const float* decay);
void lasp2_suffix_states(const Context& ctx, float* out, const float* gathered, int W, int j, int B, int H, int d,
                         int C, const float* decay);
size_t lasp2_merge_states_scratch_bytes(Device device, int B, int H, int d);

// ---- Linear attention, chunk-parallel ---------------------------------------------------
// The same forward and backward as linear_attention_forward/backward, scheduled
// for a device that wants many independent blocks (the CUDA op uses it for long
// sequences: linear_attention_chunk_count): each sequence is cut into n chunks
// of L = T / n tokens (the T - n L left over run after them), and LASP-2's
// decomposition is applied inside the device, the chunks playing the SP ranks:
//   forward   M_j = the state chunk j alone builds (lasp2_chunk_state, every
//             chunk at once); P_j = the state entering chunk j by a scan over
//             the chunks (lasp2_scan_states), P_0 = state_in; then every
//             chunk's own linear attention at once, started from P_j (a batch
//             of B n chunk-sequences of L tokens).
//   backward  P_j again; dP_j = dL/dP_j from chunk j's own outputs
//             (lasp2_prefix_state_grad); the gradients of the chunks' end
//             states by the reverse scan, from dstate_out; then every chunk's
//             backward at once. dstate_in is the reverse scan's last value.
// Results equal the unchunked op's up to the order of the fp32 sums (the
// scans sum in double). chunks >= 1 (1 = the plain op); needs
// linear_attention_chunked_scratch_bytes.
void linear_attention_forward_chunked(const Context& ctx, int chunks, float* o, const float* q, const float* k,
                                      const float* v, const float* decay, const float* state_in, float* state_out,
                                      const LinearAttentionDims& dims);
void linear_attention_backward_chunked(const Context& ctx, int chunks, float* dq, float* dk, float* dv,
                                       float* dstate_in, const float* dout, const float* dstate_out, const float* q,
                                       const float* k, const float* v, const float* decay, const float* state_in,
                                       const LinearAttentionDims& dims);
size_t linear_attention_chunked_scratch_bytes(Device device, const LinearAttentionDims& dims, int chunks);
// The chunks linear_attention_forward/backward use on `device`: 1 on the CPU
// (its blockwise body is already parallel over (b, h)); on CUDA enough chunks
// for about 2048 (sequence, chunk, head) blocks, none shorter than 64 tokens.
int linear_attention_chunk_count(Device device, const LinearAttentionDims& dims);

// In place over states (B, n, H, d, d), per (b, h, element), with w = lambda_h^L
// (exp(L log lambda) in double) and the running value acc in double:
//   forward (reverse = false): acc = first[b] (zeros when null); for j = 0..n-1:
//                              states[b, j] <- acc, acc = w acc + (old states[b, j])
//   reverse:                   the same for j = n-1..0
// and last[b] = acc at the end (not written when null). Forward turns chunk
// states M_j into entering states P_j (last = the state after the n chunks);
// reverse turns dP_j into the gradients of the chunks' end states (first =
// the gradient after the n chunks, last = dL/d(the state entering chunk 0)).
void lasp2_scan_states(const Context& ctx, float* states, float* last, const float* first, const float* decay, int B,
                       int n, int H, int d, int L, bool reverse);

}  // namespace lintrain

// ---- Optimizer updates, the gradient norm and clipping: runtime/ops_optim.h ----
#include "runtime/ops_optim.h"

// ==== FP8 numerics: runtime/ops_fp8.h ==========================================
#include "runtime/ops_fp8.h"
