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
