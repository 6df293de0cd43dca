// RMSNorm on the CPU (the op: runtime/ops.h). Statistics accumulate in
// double; the weight gradient sums fixed row chunks in order, so results do
// not depend on the thread count.
#include <cmath>
#include <cstdint>

#include "runtime/arena.h"
#include "runtime/backend.h"

namespace lintrain::cpu {

namespace {
constexpr int kRowsPerChunk = 256;  // rows whose dweight partial one thread sums
int row_chunks(int N) { return (N + kRowsPerChunk - 1) / kRowsPerChunk; }
}  // namespace

size_t rmsnorm_backward_scratch_bytes(int N, int C) {
  return arena_round(static_cast<size_t>(row_chunks(N)) * C * sizeof(float));
}

void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int N, int C,
                     float eps) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; ++n) {
    const float* x = inp + static_cast<int64_t>(n) * C;
    float* y = out + static_cast<int64_t>(n) * C;
    double ss = 0.0;
    for (int c = 0; c < C; ++c) ss += static_cast<double>(x[c]) * x[c];
    const float r = static_cast<float>(1.0 / std::sqrt(ss / C + eps));
    rstd[n] = r;
    if (weight) {
      for (int c = 0; c < C; ++c) y[c] = x[c] * r * weight[c];
    } else {
      for (int c = 0; c < C; ++c) y[c] = x[c] * r;
    }
  }
}

void rmsnorm_backward(Arena& arena, float* dinp, float* dweight, const float* dout, const float* inp,
                      const float* weight, const float* rstd, int N, int C) {
  // dx_j = r * (w_j dy_j - x_j r^2 mean_i(dy_i w_i x_i))
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; ++n) {
    const float* x = inp + static_cast<int64_t>(n) * C;
    const float* dy = dout + static_cast<int64_t>(n) * C;
    float* dx = dinp + static_cast<int64_t>(n) * C;
    const float r = rstd[n];
    double dot = 0.0;
    for (int c = 0; c < C; ++c) dot += static_cast<double>(dy[c]) * (weight ? weight[c] : 1.0f) * x[c];
    const float k = static_cast<float>(dot / C) * r * r;
    for (int c = 0; c < C; ++c) dx[c] += r * ((weight ? weight[c] : 1.0f) * dy[c] - x[c] * k);
  }
  if (!dweight) return;
  const int nchunks = row_chunks(N);
  ScratchScope scratch(arena);
  float* partial = scratch.take<float>(static_cast<size_t>(nchunks) * C, "rmsnorm_backward");
#pragma omp parallel for schedule(static)
  for (int ch = 0; ch < nchunks; ++ch) {
    float* acc = partial + static_cast<int64_t>(ch) * C;
    for (int c = 0; c < C; ++c) acc[c] = 0.0f;
    const int n1 = (ch + 1) * kRowsPerChunk < N ? (ch + 1) * kRowsPerChunk : N;
    for (int n = ch * kRowsPerChunk; n < n1; ++n) {
      const float* x = inp + static_cast<int64_t>(n) * C;
      const float* dy = dout + static_cast<int64_t>(n) * C;
      const float r = rstd[n];
      for (int c = 0; c < C; ++c) acc[c] += dy[c] * x[c] * r;
    }
  }
  for (int ch = 0; ch < nchunks; ++ch)
    for (int c = 0; c < C; ++c) dweight[c] += partial[static_cast<size_t>(ch) * C + c];
}

}  // namespace lintrain::cpu
