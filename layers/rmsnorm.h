// RMSNorm (Llama): out = inp / sqrt(mean(inp^2) + eps) * weight, per row.
#pragma once

namespace lintrain {

// out (N, C), rstd (N) saved for backward, inp (N, C), weight (C). `weight`
// may be null for the parameter-free form (weight = 1).
void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int N, int C,
                     float eps);

// dinp (N, C) += gradient through the norm. It accumulates because the input of
// every norm in the model is the residual stream, whose gradient is a sum.
// dweight (C) += sum over rows of dout * inp * rstd (skipped when null).
// Reduction order of dweight is fixed (row chunks summed in order), so results
// do not depend on the thread count.
void rmsnorm_backward(float* dinp, float* dweight, const float* dout, const float* inp,
                      const float* weight, const float* rstd, int N, int C);

}  // namespace lintrain
