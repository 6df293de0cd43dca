// Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms") on
// one parameter group, as the authors' google/automl lion code. For each
// element, with b1 interpolating the update direction and b2 decaying the
// momentum:
//   p = p * (1 - lr * wd)                     (decoupled decay, before the update)
//   c = b1 m + (1 - b1) g
//   p = p - lr * sign(c)                      (sign(0) = 0)
//   m = b2 m + (1 - b2) g
// Every element moves by exactly lr (or not at all), so Lion wants a smaller
// learning rate than Adam (optim_default_lr: 1e-4).
// State: exp_avg, the size of the group (4 bytes/param); no step counter is
// needed, but "step" is kept for the checkpoint and the report.
#pragma once

#include "optim/optimizer.h"

namespace lintrain {

class Lion : public Optimizer {
 public:
  Lion(const Context& ctx, const OptimConfig& cfg, const ParamGroup& group, const ParamTable& table);
  void step(FlatBuffer& params, const FlatBuffer& grads, double lr) override;
  const char* name() const override { return "lion"; }
  size_t state_bytes() const override;
  std::vector<StateTensor> state_tensors() override;
  std::vector<StateWord> state_words() override;
  int64_t step_count() const override { return static_cast<int64_t>(t_); }

  // The state table: "<param>/exp_avg" per tensor.
  static ParamTable state_layout(const ParamGroup& group, const ParamTable& table);

 private:
  Context ctx_;
  const ParamTable& table_;
  ParamGroup group_;
  double b1_, b2_;
  ParamTable state_table_;
  FlatBuffer state_;
  uint64_t t_ = 0;
};

extern const UpdateRuleInfo kLionRule;

}  // namespace lintrain
