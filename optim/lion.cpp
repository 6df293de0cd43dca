#include "optim/lion.h"

#include "runtime/ops.h"

namespace lintrain {

ParamTable Lion::state_layout(const ParamGroup& group, const ParamTable& table) {
  ParamTable st;
  for (int i : group.views) {
    const TensorView& v = table.view(i);
    st.add(v.name + "/exp_avg", v.shape);
  }
  return st;
}

Lion::Lion(const Context& ctx, const OptimConfig& cfg, const ParamGroup& group, const ParamTable& table)
    : ctx_(ctx),
      table_(table),
      group_(group),
      b1_(cfg.lion.betas.at(0)),
      b2_(cfg.lion.betas.at(1)),
      state_table_(state_layout(group, table)),
      state_(state_table_, ctx.device) {}

void Lion::step(FlatBuffer& params, const FlatBuffer& grads, double lr) {
  ++t_;
  LionStep s;
  s.b1 = static_cast<float>(b1_);
  s.b2 = static_cast<float>(b2_);
  // The complements rounded from double: 1 - 0.99f is 1e-6 (relative) off 0.01.
  s.c1 = static_cast<float>(1.0 - b1_);
  s.c2 = static_cast<float>(1.0 - b2_);
  s.lr = static_cast<float>(lr);
  s.decay = static_cast<float>(1.0 - lr * group_.weight_decay);
  for (size_t k = 0; k < group_.views.size(); ++k) {
    const TensorView& view = table_.view(group_.views[k]);
    float* m = state_.at(state_table_.view(static_cast<int>(k)));
    lion_update(ctx_, params.at(view), m, grads.at(view), view.numel, s);
  }
}

size_t Lion::state_bytes() const { return static_cast<size_t>(state_table_.buffer_numel()) * sizeof(float); }

std::vector<StateTensor> Lion::state_tensors() { return state_tensors_of(state_table_, state_); }

std::vector<StateWord> Lion::state_words() { return {{"step", &t_}}; }

const UpdateRuleInfo kLionRule = {
    "lion",
    [](const Context& ctx, const OptimConfig& cfg, const ParamGroup& group, const ParamTable& table,
       uint64_t) -> std::unique_ptr<Optimizer> { return std::make_unique<Lion>(ctx, cfg, group, table); },
    [](const OptimConfig&, const ParamGroup& group, const ParamTable& table) {
      return Lion::state_layout(group, table).buffer_numel();
    },
};

}  // namespace lintrain
