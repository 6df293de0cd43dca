#include "optim/optimizer.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "optim/adamw.h"

namespace lintrain {

std::unique_ptr<Optimizer> make_optimizer(const OptimConfig& cfg, const ParamTable& table) {
  if (cfg.name == "adamw") return std::make_unique<AdamW>(cfg, table);
  throw ConfigError(str_cat("optim.name: unknown optimizer '", cfg.name, "'; valid: adamw"));
}

double grad_global_norm(const FlatBuffer& grads) {
  // Fixed-size chunks summed in order: the same bits for any thread count.
  const float* g = grads.data();
  const int64_t n = grads.numel();
  constexpr int64_t kChunk = 1 << 16;
  const int64_t nchunks = (n + kChunk - 1) / kChunk;
  std::vector<double> partial(static_cast<size_t>(nchunks), 0.0);
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < nchunks; ++c) {
    double s = 0.0;
    const int64_t end = std::min(n, (c + 1) * kChunk);
    for (int64_t i = c * kChunk; i < end; ++i) s += static_cast<double>(g[i]) * g[i];
    partial[static_cast<size_t>(c)] = s;
  }
  double total = 0.0;
  for (double s : partial) total += s;
  return std::sqrt(total);
}

double clip_grad_norm(FlatBuffer& grads, double norm, double max_norm) {
  if (max_norm <= 0.0 || !(norm > max_norm)) return 1.0;
  const double scale = max_norm / (norm + 1e-6);
  const float s = static_cast<float>(scale);
  float* g = grads.data();
  const int64_t n = grads.numel();
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) g[i] *= s;
  return scale;
}

}  // namespace lintrain
