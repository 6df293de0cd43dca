#include "optim/adamw.h"

#include <cmath>

#include "runtime/ops.h"

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

AdamW::AdamW(const Context& ctx, const OptimConfig& cfg, const ParamGroup& group, const ParamTable& table)
    : ctx_(ctx),
      table_(table),
      group_(group),
      b1_(cfg.adamw.betas.at(0)),
      b2_(cfg.adamw.betas.at(1)),
      eps_(cfg.adamw.eps),
      state_table_(state_layout(group, table)),
      state_(state_table_, ctx.device) {}

void AdamW::step(FlatBuffer& params, const FlatBuffer& grads, double lr) {
  ++t_;
  const double bc1 = 1.0 - std::pow(b1_, static_cast<double>(t_));
  const double bc2 = 1.0 - std::pow(b2_, static_cast<double>(t_));
  AdamStep s;
  s.b1 = static_cast<float>(b1_);
  s.b2 = static_cast<float>(b2_);
  // 1 - b rounded from double: 1.0f - 0.999f is 1.3e-5 off in relative terms.
  s.c1 = static_cast<float>(1.0 - b1_);
  s.c2 = static_cast<float>(1.0 - b2_);
  s.eps = static_cast<float>(eps_);
  s.step_size = static_cast<float>(lr / bc1);
  s.inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(bc2));
  s.decay = static_cast<float>(1.0 - lr * group_.weight_decay);
  for (size_t k = 0; k < group_.views.size(); ++k) {
    const TensorView& view = table_.view(group_.views[k]);
    float* m = state_.at(state_table_.view(static_cast<int>(2 * k)));
    float* v = state_.at(state_table_.view(static_cast<int>(2 * k + 1)));
    adam_update(ctx_, params.at(view), m, v, grads.at(view), view.numel, s, AdamTarget::Param);
  }
}

size_t AdamW::state_bytes() const { return static_cast<size_t>(state_table_.buffer_numel()) * sizeof(float); }

std::vector<StateTensor> AdamW::state_tensors() { return state_tensors_of(state_table_, state_); }

std::vector<StateWord> AdamW::state_words() { return {{"step", &t_}}; }

const UpdateRuleInfo kAdamWRule = {
    "adamw",
    [](const Context& ctx, const OptimConfig& cfg, const ParamGroup& group, const ParamTable& table,
       uint64_t) -> std::unique_ptr<Optimizer> { return std::make_unique<AdamW>(ctx, cfg, group, table); },
    [](const OptimConfig&, const ParamGroup& group, const ParamTable& table) {
      return AdamW::state_layout(group, table).buffer_numel();
    },
};

}  // namespace lintrain
