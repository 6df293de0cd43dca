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

// ---- Matrix multiply (every projection, the output head) ----------------------

// C (M, N) = alpha * op(A) (M, K) @ op(B) (K, N) + beta * C, row-major, where
// op(X) = X or X^T and lda/ldb/ldc are row strides of the stored (untransposed)
// matrices, so a head's slice of a [T, H*d] activation is a pointer plus
// ld = H*d. FP32 in and out; the CPU runs OpenBLAS, CUDA cuBLAS (FP32 math).
void matmul(const Context& ctx, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A,
            int lda, const float* B, int ldb, float beta, float* C, int ldc);

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
