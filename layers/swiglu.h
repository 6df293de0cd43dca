// The SwiGLU activation of the Llama MLP: h = silu(gate) * up. The gate and up
// projections are one fused GEMM whose output rows are [gate (F) | up (F)].
#pragma once

namespace lintrain {

// h (N, F) = silu(gate_up[:, :F]) * gate_up[:, F:]      gate_up (N, 2F)
void swiglu_forward(float* h, const float* gate_up, int N, int F);

// dgate_up (N, 2F) = gradient of h w.r.t. [gate | up]   (assigned)
void swiglu_backward(float* dgate_up, const float* dh, const float* gate_up, int N, int F);

}  // namespace lintrain
