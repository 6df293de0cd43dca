#include "layers/linear.h"

#include "runtime/cpu/gemm.h"

namespace lintrain {

void linear_forward(float* out, const float* inp, const float* weight, int N, int C, int OC) {
  gemm(false, true, N, OC, C, 1.0f, inp, C, weight, C, 0.0f, out, OC);
}

void linear_forward_accumulate(float* out, const float* inp, const float* weight, int N, int C,
                               int OC) {
  gemm(false, true, N, OC, C, 1.0f, inp, C, weight, C, 1.0f, out, OC);
}

void linear_backward(float* dinp, float* dweight, const float* dout, const float* inp,
                     const float* weight, int N, int C, int OC) {
  if (dinp) gemm(false, false, N, C, OC, 1.0f, dout, OC, weight, C, 0.0f, dinp, C);
  gemm(true, false, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dweight, C);
}

}  // namespace lintrain
