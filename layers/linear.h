// Linear layer without bias (Llama): out = inp @ weight^T. Weights are stored
// [out_features, in_features] as Hugging Face stores them.
#pragma once

namespace lintrain {

// out (N, OC) = inp (N, C) @ weight (OC, C)^T
void linear_forward(float* out, const float* inp, const float* weight, int N, int C, int OC);

// out (N, OC) += inp (N, C) @ weight (OC, C)^T: a residual branch added into
// the residual stream in the same GEMM (beta = 1).
void linear_forward_accumulate(float* out, const float* inp, const float* weight, int N, int C,
                               int OC);

// dinp (N, C) = dout (N, OC) @ weight (OC, C)      (assigned; skipped when null)
// dweight (OC, C) += dout^T @ inp                  (accumulated)
void linear_backward(float* dinp, float* dweight, const float* dout, const float* inp,
                     const float* weight, int N, int C, int OC);

}  // namespace lintrain
