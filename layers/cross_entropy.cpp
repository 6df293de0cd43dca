#include "layers/cross_entropy.h"

#include <algorithm>
#include <cmath>

#include "runtime/cpu/gemm.h"
#include "runtime/error.h"

namespace lintrain {

CrossEntropyStats ChunkedCrossEntropy::run(const float* h, const float* w, const int32_t* targets,
                                           int N, int C, int V, float grad_scale, float* dh,
                                           float* dw) {
  for (int n = 0; n < N; ++n)
    LT_CHECK(targets[n] >= -1 && targets[n] < V, "[cross_entropy] target ", targets[n],
             " at position ", n, " is outside [0, ", V, ") (and not -1 = ignore)");
  const int chunk = std::max(1, std::min(chunk_tokens_, N));
  logits_.resize(static_cast<size_t>(chunk) * V);
  CrossEntropyStats stats;
  std::vector<double> row_loss(static_cast<size_t>(chunk));
  std::vector<int> row_correct(static_cast<size_t>(chunk));

  for (int n0 = 0; n0 < N; n0 += chunk) {
    const int rows = std::min(chunk, N - n0);
    const float* hc = h + static_cast<int64_t>(n0) * C;
    gemm(false, true, rows, V, C, 1.0f, hc, C, w, C, 0.0f, logits_.data(), V);
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; ++r) {
      float* z = logits_.data() + static_cast<int64_t>(r) * V;
      const int t = targets[n0 + r];
      float zmax = z[0];
      int arg = 0;
      for (int v = 1; v < V; ++v)
        if (z[v] > zmax) zmax = z[v], arg = v;
      double sum = 0.0;
      for (int v = 0; v < V; ++v) sum += std::exp(static_cast<double>(z[v] - zmax));
      const double lse = zmax + std::log(sum);
      row_loss[static_cast<size_t>(r)] = t >= 0 ? lse - z[t] : 0.0;
      row_correct[static_cast<size_t>(r)] = t >= 0 && arg == t;
      if (dh) {  // z becomes d(loss)/dz = grad_scale * (softmax - onehot)
        if (t < 0) {
          std::fill(z, z + V, 0.0f);
        } else {
          for (int v = 0; v < V; ++v)
            z[v] = grad_scale * static_cast<float>(std::exp(static_cast<double>(z[v]) - lse));
          z[t] -= grad_scale;
        }
      }
    }
    for (int r = 0; r < rows; ++r) {
      if (targets[n0 + r] < 0) continue;
      stats.loss_sum += row_loss[static_cast<size_t>(r)];
      stats.count += 1;
      stats.correct += row_correct[static_cast<size_t>(r)];
    }
    if (dh) {
      gemm(false, false, rows, C, V, 1.0f, logits_.data(), V, w, C, 0.0f,
           dh + static_cast<int64_t>(n0) * C, C);
      gemm(true, false, V, C, rows, 1.0f, logits_.data(), V, hc, C, 1.0f, dw, C);
    }
  }
  return stats;
}

}  // namespace lintrain
