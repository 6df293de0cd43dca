// Copies and fills on the CPU (the ops: runtime/ops.h).
#include <algorithm>
#include <cstring>

#include "runtime/backend.h"

namespace lintrain::cpu {

void copy_floats(float* dst, const float* src, int64_t n) {
  if (dst != src) std::memcpy(dst, src, sizeof(float) * static_cast<size_t>(n));
}

void zero_floats(float* dst, int64_t n) { std::fill(dst, dst + n, 0.0f); }

void copy_rows(float* dst, int64_t ldd, const float* src, int64_t lds, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r)
    std::memcpy(dst + r * ldd, src + r * lds, static_cast<size_t>(cols) * sizeof(float));
}

}  // namespace lintrain::cpu
