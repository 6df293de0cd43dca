#include "optim/optimizer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "optim/adamw.h"
#include "optim/frugal.h"
#include "optim/galore.h"
#include "optim/lion.h"
#include "optim/param_groups.h"
#include "optim/spam.h"
#include "runtime/error.h"
#include "runtime/ops.h"

namespace lintrain {

const std::vector<UpdateRuleInfo>& update_rules() {
  static const std::vector<UpdateRuleInfo> rules = {kAdamWRule, kLionRule, kGaloreRule, kSpamRule, kFrugalRule};
  return rules;
}

const UpdateRuleInfo& find_update_rule(const std::string& name) {
  std::string valid;
  for (const UpdateRuleInfo& r : update_rules()) {
    if (name == r.name) return r;
    valid += (valid.empty() ? "" : ", ") + std::string(r.name);
  }
  throw ConfigError(str_cat("optim: unknown optimizer '", name, "'; valid: ", valid));
}

std::unique_ptr<Optimizer> make_optimizer(const Context& ctx, const OptimConfig& cfg, const ParamTable& table,
                                          uint64_t seed) {
  return std::make_unique<GroupedOptimizer>(ctx, cfg, table, seed);
}

std::vector<StateTensor> state_tensors_of(const ParamTable& table, const FlatBuffer& buffer) {
  std::vector<StateTensor> out;
  out.reserve(table.size());
  for (const TensorView& v : table.views()) out.push_back({v.name, v.shape, buffer.at(v), v.numel, buffer.device()});
  return out;
}

Rng RngWords::load() const {
  Rng::State st;
  for (int i = 0; i < 4; ++i) st.s[i] = w[i];
  std::memcpy(&st.spare, &w[4], sizeof st.spare);
  st.has_spare = w[5] != 0;
  Rng rng;
  rng.set_state(st);
  return rng;
}

void RngWords::store(const Rng& rng) {
  const Rng::State st = rng.state();
  for (int i = 0; i < 4; ++i) w[i] = st.s[i];
  std::memcpy(&w[4], &st.spare, sizeof st.spare);
  w[5] = st.has_spare ? 1 : 0;
}

void RngWords::expose(const std::string& name, std::vector<StateWord>& out) {
  for (int i = 0; i < 6; ++i) out.push_back({str_cat(name, "/", i), &w[i]});
}

double grad_global_norm(const Context& ctx, const FlatBuffer& grads) {
  return std::sqrt(grad_norm_squared(ctx, grads.data(), grads.numel()));
}

double clip_grad_norm(const Context& ctx, FlatBuffer& grads, double norm, double max_norm) {
  if (max_norm <= 0.0 || !(norm > max_norm)) return 1.0;
  const double scale = max_norm / (norm + 1e-6);
  lintrain::scale(ctx, grads.data(), grads.numel(), static_cast<float>(scale));
  return scale;
}

}  // namespace lintrain
