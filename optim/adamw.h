// AdamW (Loshchilov & Hutter) on one parameter group: Adam with bias
// correction and decoupled weight decay. For step t (1-based) and each element:
//   m = b1 m + (1 - b1) g,   v = b2 v + (1 - b2) g^2
//   p = p - lr * wd * p                       (decoupled decay, before the update)
//   p = p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
// State: exp_avg and exp_avg_sq, each the size of the group (8 bytes/param).
#pragma once

#include "optim/optimizer.h"

namespace lintrain {

class AdamW : public Optimizer {
 public:
  AdamW(const Context& ctx, const OptimConfig& cfg, const ParamGroup& group, const ParamTable& table);
  void step(FlatBuffer& params, const FlatBuffer& grads, double lr) override;
  const char* name() const override { return "adamw"; }
  size_t state_bytes() const override;
  std::vector<StateTensor> state_tensors() override;
  std::vector<StateWord> state_words() override;
  int64_t step_count() const override { return static_cast<int64_t>(t_); }

  // The state table: "<param>/exp_avg" and "<param>/exp_avg_sq" per tensor.
  static ParamTable state_layout(const ParamGroup& group, const ParamTable& table);

 private:
  Context ctx_;
  const ParamTable& table_;
  ParamGroup group_;
  double b1_, b2_, eps_;
  ParamTable state_table_;
  FlatBuffer state_;
  uint64_t t_ = 0;
};

extern const UpdateRuleInfo kAdamWRule;

}  // namespace lintrain
