// Cross-entropy over rows of logits on the CPU (the op: runtime/ops.h). One
// thread per row, the row's sums in a fixed order (double): results do not
// depend on the thread count.
#include <algorithm>
#include <cmath>

#include "runtime/backend.h"

namespace lintrain::cpu {

void cross_entropy_rows(float* logits, double* row_loss, int32_t* row_correct, const int32_t* targets, int rows,
                        int V, float grad_scale, bool want_grad) {
#pragma omp parallel for schedule(static)
  for (int r = 0; r < rows; ++r) {
    float* z = logits + static_cast<int64_t>(r) * V;
    const int t = targets[r];
    float zmax = z[0];
    int arg = 0;
    for (int v = 1; v < V; ++v)
      if (z[v] > zmax) zmax = z[v], arg = v;
    double sum = 0.0;
    for (int v = 0; v < V; ++v) sum += std::exp(static_cast<double>(z[v] - zmax));
    const double lse = zmax + std::log(sum);
    row_loss[r] = t >= 0 ? lse - z[t] : 0.0;
    row_correct[r] = t >= 0 && arg == t;
    if (want_grad) {  // z becomes d(loss)/dz = grad_scale * (softmax - onehot)
      if (t < 0) {
        std::fill(z, z + V, 0.0f);
      } else {
        for (int v = 0; v < V; ++v) z[v] = grad_scale * static_cast<float>(std::exp(static_cast<double>(z[v]) - lse));
        z[t] -= grad_scale;
      }
    }
  }
}

}  // namespace lintrain::cpu
