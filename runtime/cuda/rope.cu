// RoPE on CUDA (the op: runtime/ops.h): one thread per (token, head, pair),
// the CPU's arithmetic per element.
#include <cuda_runtime.h>

#include <cstdint>

#include "runtime/backend.h"
#include "runtime/cuda/check.h"

namespace lintrain::cuda {

namespace {

constexpr int kThreads = 256;

__global__ void rope_rotate_kernel(float* x, int ldx, int T, int heads, int d, const float* cos, const float* sin,
                                   float sign, int64_t total) {
  const int half = d / 2;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int i = static_cast<int>(e % half);
    const int h = static_cast<int>((e / half) % heads);
    const int64_t r = e / (static_cast<int64_t>(half) * heads);
    const int t = static_cast<int>(r % T);
    float* x1 = x + r * ldx + static_cast<int64_t>(h) * d;
    const float c = cos[static_cast<int64_t>(t) * half + i], si = sign * sin[static_cast<int64_t>(t) * half + i];
    const float a = x1[i], b = x1[i + half];
    x1[i] = a * c - b * si;
    x1[i + half] = b * c + a * si;
  }
}

}  // namespace

void rope_rotate(void* stream, float* x, int ldx, int B, int T, int heads, int d, const float* cos,
                 const float* sin, float sign) {
  const int64_t total = static_cast<int64_t>(B) * T * heads * (d / 2);
  if (total == 0) return;
  const int blocks = static_cast<int>(std::min<int64_t>((total + kThreads - 1) / kThreads, 65535 * 8));
  LT_CUDA_CHECK_LAUNCH((rope_rotate_kernel<<<blocks, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      x, ldx, T, heads, d, cos, sin, sign, total)));
}

}  // namespace lintrain::cuda
