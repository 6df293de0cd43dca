// Copies and fills on CUDA (the ops: runtime/ops.h), ordered on the op's stream.
#include <cuda_runtime.h>

#include <cstdint>

#include "runtime/backend.h"
#include "runtime/cuda/check.h"

namespace lintrain::cuda {

void copy_floats(void* stream, float* dst, const float* src, int64_t n) {
  if (dst == src) return;
  LT_CUDA_CHECK(cudaMemcpyAsync(dst, src, sizeof(float) * static_cast<size_t>(n), cudaMemcpyDeviceToDevice,
                                static_cast<cudaStream_t>(stream)));
}

void zero_floats(void* stream, float* dst, int64_t n) {
  LT_CUDA_CHECK(cudaMemsetAsync(dst, 0, sizeof(float) * static_cast<size_t>(n), static_cast<cudaStream_t>(stream)));
}

}  // namespace lintrain::cuda
