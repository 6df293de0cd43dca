// Token embedding on CUDA (the op: runtime/ops.h). Ids were checked on the
// host before the upload. The backward gives each thread one column and walks
// the tokens in order: deterministic, no atomics.
#include <cuda_runtime.h>

#include "runtime/backend.h"
#include "runtime/cuda/check.h"

namespace lintrain::cuda {

namespace {

constexpr int kThreads = 256;

__global__ void embedding_forward_kernel(float* out, const int32_t* tokens, const float* wte, int C) {
  const int64_t row = blockIdx.x;
  const float* src = wte + static_cast<int64_t>(tokens[row]) * C;
  for (int c = threadIdx.x; c < C; c += kThreads) out[row * C + c] = src[c];
}

__global__ void embedding_backward_kernel(float* dwte, const float* dout, const int32_t* tokens, int N, int C) {
  const int c = blockIdx.x * kThreads + threadIdx.x;
  if (c >= C) return;
  for (int n = 0; n < N; ++n) dwte[static_cast<int64_t>(tokens[n]) * C + c] += dout[static_cast<int64_t>(n) * C + c];
}

}  // namespace

void embedding_forward(void* stream, float* out, const int32_t* tokens, const float* wte, int N, int C) {
  if (N == 0) return;
  LT_CUDA_CHECK_LAUNCH((embedding_forward_kernel<<<N, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      out, tokens, wte, C)));
}

void embedding_backward(void* stream, float* dwte, const float* dout, const int32_t* tokens, int N, int C) {
  if (N == 0) return;
  LT_CUDA_CHECK_LAUNCH((embedding_backward_kernel<<<(C + kThreads - 1) / kThreads, kThreads, 0,
                                                     static_cast<cudaStream_t>(stream)>>>(dwte, dout, tokens, N, C)));
}

}  // namespace lintrain::cuda
