// Small helpers shared by the update-rule tests (test_lion, test_spam,
// test_galore, test_frugal).
#pragma once

#include <string>

#include "optim/optimizer.h"
#include "runtime/param_table.h"
#include "runtime/rng.h"

namespace lintrain::test {

// One parameter group holding every tensor of `table`, for `optimizer`.
inline ParamGroup whole_group(const ParamTable& table, const std::string& optimizer, double weight_decay) {
  ParamGroup g;
  g.name = optimizer;
  g.optimizer = optimizer;
  for (int i = 0; i < static_cast<int>(table.size()); ++i) g.views.push_back(i);
  g.weight_decay = weight_decay;
  return g;
}

// Every tensor of `b` from scale * N(0, 1).
inline void fill_normal(FlatBuffer& b, const ParamTable& table, Rng& rng, double scale = 1.0) {
  for (const auto& v : table.views())
    for (int64_t i = 0; i < v.numel; ++i) b.at(v)[i] = static_cast<float>(scale * rng.normal());
}

}  // namespace lintrain::test
