#include "optim/lion.h"

namespace lintrain {

ParamTable Lion::state_layout(const ParamGroup& group, const ParamTable& table) {
  ParamTable st;
  for (int i : group.views) {
    const TensorView& v = table.view(i);
    st.add(v.name + "/exp_avg", v.shape);
  }
  return st;
}

Lion::Lion(const OptimConfig& cfg, const ParamGroup& group, const ParamTable& table)
    : table_(table),
      group_(group),
      b1_(cfg.lion.betas.at(0)),
      b2_(cfg.lion.betas.at(1)),
      state_table_(state_layout(group, table)),
      state_(state_table_) {}

void Lion::step(FlatBuffer& params, const FlatBuffer& grads, double lr) {
  ++t_;
  const float b1 = static_cast<float>(b1_), b2 = static_cast<float>(b2_);
  // The complements rounded from double: 1 - 0.99f is 1e-6 (relative) off 0.01.
  const float c1 = static_cast<float>(1.0 - b1_), c2 = static_cast<float>(1.0 - b2_);
  const float step = static_cast<float>(lr);
  const float decay = static_cast<float>(1.0 - lr * group_.weight_decay);
  for (size_t k = 0; k < group_.views.size(); ++k) {
    const TensorView& view = table_.view(group_.views[k]);
    float* p = params.at(view);
    const float* g = grads.at(view);
    float* m = state_.at(state_table_.view(static_cast<int>(k)));
    const int64_t n = view.numel;
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      const float c = b1 * m[i] + c1 * g[i];
      // sign(c) with sign(0) = 0, branch-free so the loop vectorises.
      const float sign = static_cast<float>(c > 0.0f) - static_cast<float>(c < 0.0f);
      p[i] = p[i] * decay - step * sign;
      m[i] = b2 * m[i] + c2 * g[i];
    }
  }
}

size_t Lion::state_bytes() const { return static_cast<size_t>(state_table_.buffer_numel()) * sizeof(float); }

std::vector<StateTensor> Lion::state_tensors() { return state_tensors_of(state_table_, state_); }

std::vector<StateWord> Lion::state_words() { return {{"step", &t_}}; }

const UpdateRuleInfo kLionRule = {
    "lion",
    [](const OptimConfig& cfg, const ParamGroup& group, const ParamTable& table, uint64_t) -> std::unique_ptr<Optimizer> {
      return std::make_unique<Lion>(cfg, group, table);
    },
    [](const OptimConfig&, const ParamGroup& group, const ParamTable& table) {
      return Lion::state_layout(group, table).buffer_numel();
    },
};

}  // namespace lintrain
