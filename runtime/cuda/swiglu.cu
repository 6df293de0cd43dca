// SwiGLU on CUDA (the op: runtime/ops.h): elementwise over (N, F).
#include <cuda_runtime.h>

#include "runtime/backend.h"
#include "runtime/cuda/check.h"

namespace lintrain::cuda {

namespace {

constexpr int kThreads = 256;

int blocks_for(int64_t n) { return static_cast<int>(std::min<int64_t>((n + kThreads - 1) / kThreads, 65535 * 8)); }

__global__ void swiglu_forward_kernel(float* h, const float* gate_up, int64_t total, int F) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t n = i / F, f = i % F;
    const float g = gate_up[n * 2 * F + f], u = gate_up[n * 2 * F + F + f];
    h[i] = g / (1.0f + expf(-g)) * u;
  }
}

__global__ void swiglu_backward_kernel(float* dgate_up, const float* dh, const float* gate_up, int64_t total, int F) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t n = i / F, f = i % F;
    const float g = gate_up[n * 2 * F + f], u = gate_up[n * 2 * F + F + f];
    const float sig = 1.0f / (1.0f + expf(-g));
    dgate_up[n * 2 * F + F + f] = dh[i] * g * sig;
    dgate_up[n * 2 * F + f] = dh[i] * u * sig * (1.0f + g * (1.0f - sig));
  }
}

}  // namespace

void swiglu_forward(void* stream, float* h, const float* gate_up, int N, int F) {
  const int64_t total = static_cast<int64_t>(N) * F;
  if (total == 0) return;
  LT_CUDA_CHECK_LAUNCH((swiglu_forward_kernel<<<blocks_for(total), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      h, gate_up, total, F)));
}

void swiglu_backward(void* stream, float* dgate_up, const float* dh, const float* gate_up, int N, int F) {
  const int64_t total = static_cast<int64_t>(N) * F;
  if (total == 0) return;
  LT_CUDA_CHECK_LAUNCH((swiglu_backward_kernel<<<blocks_for(total), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      dgate_up, dh, gate_up, total, F)));
}

}  // namespace lintrain::cuda
