// Linear layer without bias (Llama): out = inp @ weight^T. Weights are stored
// [out_features, in_features] as Hugging Face stores them. Every GEMM runs
// through the matmul op on ctx's device, in FP32 or with BF16 operands
// (GemmPrecision::bf16: every operand must then hold bf16 values; see
// matmul_bf16 in runtime/ops.h).
#pragma once

#include "runtime/context.h"
#include "runtime/ops.h"

namespace lintrain {

// out (N, OC) = inp (N, C) @ weight (OC, C)^T
void linear_forward(const Context& ctx, GemmPrecision prec, float* out, const float* inp, const float* weight, int N,
                    int C, int OC);

// out (N, OC) += inp (N, C) @ weight (OC, C)^T: a residual branch added into
// the residual stream in the same GEMM (beta = 1).
void linear_forward_accumulate(const Context& ctx, GemmPrecision prec, float* out, const float* inp, const float* weight,
                               int N, int C, int OC);

// dinp (N, C) = dout (N, OC) @ weight (OC, C)      (assigned; skipped when null)
// dinp (N, C) += ...                               (with accumulate_dinp)
// dweight (OC, C) += dout^T @ inp                  (accumulated)
void linear_backward(const Context& ctx, GemmPrecision prec, float* dinp, float* dweight, const float* dout,
                     const float* inp, const float* weight, int N, int C, int OC, bool accumulate_dinp = false);

}  // namespace lintrain
