// Copies and fills on the CPU (the ops: runtime/ops.h).
#include <algorithm>
#include <cstring>

#include "runtime/backend.h"

namespace lintrain::cpu {

void copy_floats(float* dst, const float* src, int64_t n) {
  if (dst != src) std::memcpy(dst, src, sizeof(float) * static_cast<size_t>(n));
}

void zero_floats(float* dst, int64_t n) { std::fill(dst, dst + n, 0.0f); }

}  // namespace lintrain::cpu
