// Parameter groups: which update rule and settings each tensor gets.
//
// optim.groups is an ordered list of rules; a tensor takes the first rule
// whose `match` globs (on its Hugging Face name) and `ndim` both fit, and
// tensors no rule matches take optim.name with the run's settings. Without
// optim.groups, the defaults of optim.name apply: adamw, lion and spam update
// every tensor; galore and frugal project the 2-D attention and MLP weights
// and leave embeddings, norms and the output head to AdamW, as their official
// training code does. Within a rule, tensors matching optim.no_decay form a
// separate ".no_decay" group with weight decay 0.
#pragma once

#include <string>
#include <vector>

#include "optim/optimizer.h"

namespace lintrain {

// Whether `name` matches the glob `pattern`: the shell's rules through POSIX
// fnmatch ('*' any run of characters, dots included; '?' exactly one;
// [abc] / [0-9] / [!x] one character of a set; a backslash quotes the next).
bool glob_match(const std::string& pattern, const std::string& name);

// The rules in force: cfg.groups, or the defaults of cfg.name.
std::vector<ParamGroupRule> effective_group_rules(const OptimConfig& cfg);

// The non-empty groups of `table` under cfg, in the order of the rules (each
// rule's decaying group before its ".no_decay" group). Every tensor is in
// exactly one group. Throws ConfigError when a rule of cfg.groups would be
// ignored: a glob of its match names no tensor, or the rule takes none (its
// ndim, or earlier rules that take its tensors); the message names the rule.
// A glob of a user-given optim.no_decay that names no tensor is refused too.
std::vector<ParamGroup> resolve_param_groups(const OptimConfig& cfg, const ParamTable& table);

// The optimizer of a run: one update rule instance per group. Its state names
// are "<group>/<name inside the rule>"; its step count is the steps taken.
class GroupedOptimizer : public Optimizer {
 public:
  GroupedOptimizer(const Context& ctx, const OptimConfig& cfg, const ParamTable& table, uint64_t seed);
  void step(FlatBuffer& params, const FlatBuffer& grads, double lr) override;
  const char* name() const override { return name_.c_str(); }
  size_t state_bytes() const override;
  std::vector<StateTensor> state_tensors() override;
  std::vector<StateWord> state_words() override;
  int64_t step_count() const override { return static_cast<int64_t>(t_); }

  const std::vector<ParamGroup>& groups() const { return groups_; }
  const Optimizer& group_optimizer(size_t i) const { return *rules_.at(i); }

 private:
  std::string name_;
  std::vector<ParamGroup> groups_;
  std::vector<std::unique_ptr<Optimizer>> rules_;
  uint64_t t_ = 0;
};

// Optimizer-state memory of cfg on `table`, computed from the state layouts
// without allocating anything.
struct GroupMemory {
  ParamGroup group;
  int64_t params = 0;        // parameters in the group
  int64_t state_floats = 0;  // f32 state values the group's rule holds
};
struct OptimizerMemory {
  std::vector<GroupMemory> groups;
  int64_t params = 0;        // all parameters
  int64_t state_floats = 0;  // all groups
  // What AdamW on every tensor would hold (2 values per parameter, with padding).
  int64_t adamw_state_floats = 0;
};
OptimizerMemory plan_optimizer_memory(const OptimConfig& cfg, const ParamTable& table);

// The startup report: one line per group (tensors, parameters, rule, lr scale,
// weight decay, state bytes) and a total compared with AdamW.
std::string format_optimizer_report(const OptimConfig& cfg, const OptimizerMemory& mem);

}  // namespace lintrain
