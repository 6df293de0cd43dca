// AdamW (Loshchilov & Hutter): Adam with bias correction and decoupled weight
// decay. For step t (1-based) and each element:
//   m = b1 m + (1 - b1) g,   v = b2 v + (1 - b2) g^2
//   p = p - lr * wd * p                       (decoupled decay, before the update)
//   p = p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
// Weight decay applies to matrices only (ndim >= 2); norms keep theirs at zero,
// as Llama training does (parameter groups from YAML are a later addition).
#pragma once

#include "optim/optimizer.h"

namespace lintrain {

class AdamW : public Optimizer {
 public:
  AdamW(const OptimConfig& cfg, const ParamTable& table);
  void step(FlatBuffer& params, const FlatBuffer& grads, double lr) override;
  const char* name() const override { return "adamw"; }
  size_t state_bytes() const override;
  std::vector<std::pair<std::string, FlatBuffer*>> state_buffers() override;
  int64_t step_count() const override { return t_; }
  void set_step_count(int64_t t) override { t_ = t; }

 private:
  const ParamTable& table_;
  double b1_, b2_, eps_, wd_;
  FlatBuffer m_, v_;
  int64_t t_ = 0;
};

}  // namespace lintrain
