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

void copy_rows(void* stream, float* dst, int64_t ldd, const float* src, int64_t lds, int64_t rows, int64_t cols) {
  LT_CUDA_CHECK(cudaMemcpy2DAsync(dst, sizeof(float) * static_cast<size_t>(ldd), src,
                                  sizeof(float) * static_cast<size_t>(lds), sizeof(float) * static_cast<size_t>(cols),
                                  static_cast<size_t>(rows), cudaMemcpyDeviceToDevice, static_cast<cudaStream_t>(stream)));
}

}  // namespace lintrain::cuda
