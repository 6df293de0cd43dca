// SwiGLU on the CPU (the op: runtime/ops.h).
#include <cmath>
#include <cstdint>

#include "runtime/backend.h"

namespace lintrain::cpu {

void swiglu_forward(float* h, const float* gate_up, int N, int F) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; ++n) {
    const float* g = gate_up + static_cast<int64_t>(n) * 2 * F;
    const float* u = g + F;
    float* y = h + static_cast<int64_t>(n) * F;
    for (int f = 0; f < F; ++f) y[f] = g[f] / (1.0f + std::exp(-g[f])) * u[f];
  }
}

void swiglu_backward(float* dgate_up, const float* dh, const float* gate_up, int N, int F) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; ++n) {
    const float* g = gate_up + static_cast<int64_t>(n) * 2 * F;
    const float* u = g + F;
    const float* dy = dh + static_cast<int64_t>(n) * F;
    float* dg = dgate_up + static_cast<int64_t>(n) * 2 * F;
    float* du = dg + F;
    for (int f = 0; f < F; ++f) {
      const float sig = 1.0f / (1.0f + std::exp(-g[f]));
      const float silu = g[f] * sig;
      du[f] = dy[f] * silu;
      dg[f] = dy[f] * u[f] * sig * (1.0f + g[f] * (1.0f - sig));
    }
  }
}

}  // namespace lintrain::cpu
