#include "optim/adamw.h"

#include <cmath>

namespace lintrain {

ParamTable AdamW::state_layout(const ParamGroup& group, const ParamTable& table) {
  ParamTable st;
  for (int i : group.views) {
    const TensorView& v = table.view(i);
    st.add(v.name + "/exp_avg", v.shape);
    st.add(v.name + "/exp_avg_sq", v.shape);
  }
  return st;
}

AdamW::AdamW(const OptimConfig& cfg, const ParamGroup& group, const ParamTable& table)
    : table_(table),
      group_(group),
      b1_(cfg.adamw.betas.at(0)),
      b2_(cfg.adamw.betas.at(1)),
      eps_(cfg.adamw.eps),
      state_table_(state_layout(group, table)),
      state_(state_table_) {}

void AdamW::step(FlatBuffer& params, const FlatBuffer& grads, double lr) {
  ++t_;
  // 1 - b rounded from double: 1.0f - 0.999f is 1.3e-5 off in relative terms.
  const float b1 = static_cast<float>(b1_), b2 = static_cast<float>(b2_);
  const float c1 = static_cast<float>(1.0 - b1_), c2 = static_cast<float>(1.0 - b2_);
  const double bc1 = 1.0 - std::pow(b1_, static_cast<double>(t_));
  const double bc2 = 1.0 - std::pow(b2_, static_cast<double>(t_));
  const float step_size = static_cast<float>(lr / bc1);
  const float inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(bc2));
  const float eps = static_cast<float>(eps_);
  const float decay = static_cast<float>(1.0 - lr * group_.weight_decay);
  for (size_t k = 0; k < group_.views.size(); ++k) {
    const TensorView& view = table_.view(group_.views[k]);
    float* p = params.at(view);
    const float* g = grads.at(view);
    float* m = state_.at(state_table_.view(static_cast<int>(2 * k)));
    float* v = state_.at(state_table_.view(static_cast<int>(2 * k + 1)));
    const int64_t n = view.numel;
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      m[i] = b1 * m[i] + c1 * g[i];
      v[i] = b2 * v[i] + c2 * g[i] * g[i];
      p[i] = p[i] * decay - step_size * m[i] / (std::sqrt(v[i]) * inv_sqrt_bc2 + eps);
    }
  }
}

size_t AdamW::state_bytes() const { return static_cast<size_t>(state_table_.buffer_numel()) * sizeof(float); }

std::vector<StateTensor> AdamW::state_tensors() { return state_tensors_of(state_table_, state_); }

std::vector<StateWord> AdamW::state_words() { return {{"step", &t_}}; }

const UpdateRuleInfo kAdamWRule = {
    "adamw",
    [](const OptimConfig& cfg, const ParamGroup& group, const ParamTable& table, uint64_t) -> std::unique_ptr<Optimizer> {
      return std::make_unique<AdamW>(cfg, group, table);
    },
    [](const OptimConfig&, const ParamGroup& group, const ParamTable& table) {
      return AdamW::state_layout(group, table).buffer_numel();
    },
};

}  // namespace lintrain
