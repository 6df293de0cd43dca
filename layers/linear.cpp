#include "layers/linear.h"

namespace lintrain {

void linear_forward(const Context& ctx, GemmPrecision prec, float* out, const float* inp, const float* weight, int N,
                    int C, int OC) {
  matmul(ctx, prec, false, true, N, OC, C, 1.0f, inp, C, weight, C, 0.0f, out, OC);
}

void linear_forward_accumulate(const Context& ctx, GemmPrecision prec, float* out, const float* inp, const float* weight,
                               int N, int C, int OC) {
  matmul(ctx, prec, false, true, N, OC, C, 1.0f, inp, C, weight, C, 1.0f, out, OC);
}

void linear_backward(const Context& ctx, GemmPrecision prec, float* dinp, float* dweight, const float* dout,
                     const float* inp, const float* weight, int N, int C, int OC, bool accumulate_dinp) {
  if (dinp)
    matmul(ctx, prec, false, false, N, C, OC, 1.0f, dout, OC, weight, C, accumulate_dinp ? 1.0f : 0.0f, dinp, C);
  matmul(ctx, prec, true, false, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dweight, C);
}

}  // namespace lintrain
