#include "optim/adamw.h"

#include <cmath>

namespace lintrain {

AdamW::AdamW(const OptimConfig& cfg, const ParamTable& table)
    : table_(table),
      b1_(cfg.betas.at(0)),
      b2_(cfg.betas.at(1)),
      eps_(cfg.eps),
      wd_(cfg.weight_decay),
      m_(table),
      v_(table) {}

void AdamW::step(FlatBuffer& params, const FlatBuffer& grads, double lr) {
  ++t_;
  const float b1 = static_cast<float>(b1_), b2 = static_cast<float>(b2_);
  const double bc1 = 1.0 - std::pow(b1_, static_cast<double>(t_));
  const double bc2 = 1.0 - std::pow(b2_, static_cast<double>(t_));
  const float step_size = static_cast<float>(lr / bc1);
  const float inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(bc2));
  const float eps = static_cast<float>(eps_);
  for (const auto& view : table_.views()) {
    float* p = params.at(view);
    const float* g = grads.at(view);
    float* m = m_.at(view);
    float* v = v_.at(view);
    const float decay = view.shape.size() >= 2 ? static_cast<float>(1.0 - lr * wd_) : 1.0f;
    const int64_t n = view.numel;
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      m[i] = b1 * m[i] + (1.0f - b1) * g[i];
      v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
      p[i] = p[i] * decay - step_size * m[i] / (std::sqrt(v[i]) * inv_sqrt_bc2 + eps);
    }
  }
}

size_t AdamW::state_bytes() const {
  return 2 * static_cast<size_t>(table_.param_count()) * sizeof(float);
}

std::vector<std::pair<std::string, FlatBuffer*>> AdamW::state_buffers() {
  return {{"exp_avg", &m_}, {"exp_avg_sq", &v_}};
}

}  // namespace lintrain
