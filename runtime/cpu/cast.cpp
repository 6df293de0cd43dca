// Precision casts on the CPU (the ops: runtime/ops.h).
#include "runtime/backend.h"
#include "runtime/dtype.h"

namespace lintrain::cpu {

void round_to_bf16(float* out, const float* in, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) out[i] = lintrain::round_to_bf16(in[i]);
}

}  // namespace lintrain::cpu
