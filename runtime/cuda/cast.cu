// Precision casts on CUDA (the ops: runtime/ops.h). The rounding is the CPU's
// integer algorithm (runtime/dtype.h), so both backends agree bit for bit.
#include <cuda_runtime.h>

#include <cstdint>

#include "runtime/backend.h"
#include "runtime/cuda/check.h"

namespace lintrain::cuda {

namespace {

constexpr int kThreads = 256;

__global__ void round_to_bf16_kernel(float* out, const float* in, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    uint32_t u = __float_as_uint(in[i]);
    if ((u & 0x7fffffffu) > 0x7f800000u) {
      u = (u | 0x00400000u) & 0xffff0000u;  // NaN stays a quiet NaN
    } else {
      u += 0x7fffu + ((u >> 16) & 1u);  // to nearest, ties to even
      u &= 0xffff0000u;
    }
    out[i] = __uint_as_float(u);
  }
}

}  // namespace

void round_to_bf16(void* stream, float* out, const float* in, int64_t n) {
  const int blocks = static_cast<int>(std::min<int64_t>((n + kThreads - 1) / kThreads, 65535 * 8));
  LT_CUDA_CHECK_LAUNCH((round_to_bf16_kernel<<<blocks, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(out, in, n)));
}

}  // namespace lintrain::cuda
