// Token embedding on the CPU (the op: runtime/ops.h; ids checked there).
#include <cstring>

#include "runtime/backend.h"

namespace lintrain::cpu {

void embedding_forward(float* out, const int32_t* tokens, const float* wte, int N, int C) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; ++n)
    std::memcpy(out + static_cast<int64_t>(n) * C, wte + static_cast<int64_t>(tokens[n]) * C,
                sizeof(float) * C);
}

void embedding_backward(float* dwte, const float* dout, const int32_t* tokens, int N, int C) {
  constexpr int kCols = 64;  // one thread's column slice: a few cache lines per row
  const int nslices = (C + kCols - 1) / kCols;
#pragma omp parallel for schedule(static)
  for (int s = 0; s < nslices; ++s) {
    const int c0 = s * kCols, c1 = c0 + kCols < C ? c0 + kCols : C;
    for (int n = 0; n < N; ++n) {
      float* row = dwte + static_cast<int64_t>(tokens[n]) * C;
      const float* g = dout + static_cast<int64_t>(n) * C;
      for (int c = c0; c < c1; ++c) row[c] += g[c];
    }
  }
}

}  // namespace lintrain::cpu
