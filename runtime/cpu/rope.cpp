// RoPE on the CPU (the op: runtime/ops.h; the table: runtime/rope_table.h):
// an elementwise rotation of each (i, i + d/2) pair. Parallel over tokens;
// every element is computed by one thread with the same operations, so
// results do not depend on the thread count.
#include "runtime/backend.h"

namespace lintrain::cpu {

// sign = +1 rotates by +angle (forward), -1 by -angle (backward = transpose).
// cos/sin: (T, d/2), row t for token t of every sequence.
void rope_rotate(float* x, int ldx, int B, int T, int heads, int d, const float* cos, const float* sin, float sign) {
  const int half = d / 2;
  const long rows = static_cast<long>(B) * T;
#pragma omp parallel for schedule(static)
  for (long r = 0; r < rows; ++r) {
    const int t = static_cast<int>(r % T);
    const float* c = cos + static_cast<long>(t) * half;
    const float* s = sin + static_cast<long>(t) * half;
    float* row = x + r * ldx;
    for (int h = 0; h < heads; ++h) {
      float* x1 = row + h * d;
      float* x2 = x1 + half;
      for (int i = 0; i < half; ++i) {
        const float a = x1[i], b = x2[i], si = sign * s[i];
        x1[i] = a * c[i] - b * si;
        x2[i] = b * c[i] + a * si;
      }
    }
  }
}

}  // namespace lintrain::cpu
