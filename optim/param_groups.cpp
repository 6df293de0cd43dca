#include "optim/param_groups.h"

#include <fnmatch.h>

#include <algorithm>
#include <cctype>
#include <cstdio>

#include "runtime/error.h"

namespace lintrain {

bool glob_match(const std::string& pattern, const std::string& name) {
  // POSIX fnmatch without FNM_PATHNAME or FNM_PERIOD: '*' crosses dots.
  return fnmatch(pattern.c_str(), name.c_str(), 0) == 0;
}

namespace {

bool matches_any(const std::vector<std::string>& patterns, const std::string& name) {
  for (const std::string& pat : patterns)
    if (glob_match(pat, name)) return true;
  return false;
}

bool rule_fits(const ParamGroupRule& rule, const TensorView& v) {
  if (rule.ndim != 0 && static_cast<int>(v.shape.size()) != rule.ndim) return false;
  return matches_any(rule.match, v.name);
}

// `name` with each run of digits as '*': model.layers.*.mlp.up_proj.weight.
std::string name_shape(const std::string& name) {
  std::string out;
  for (size_t i = 0; i < name.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(name[i]))) {
      out += name[i];
    } else if (i == 0 || !std::isdigit(static_cast<unsigned char>(name[i - 1]))) {
      out += '*';
    }
  }
  return out;
}

// A few of the model's tensor names (layer numbers as '*'), those sharing the
// longest start with `pattern` first: what the user could have meant.
std::string some_tensor_names(const std::string& pattern, const ParamTable& table) {
  std::vector<std::string> shapes;
  for (int i = 0; i < static_cast<int>(table.size()); ++i) {
    const std::string s = name_shape(table.view(i).name);
    if (std::find(shapes.begin(), shapes.end(), s) == shapes.end()) shapes.push_back(s);
  }
  auto common = [&](const std::string& s) {
    size_t n = 0;
    while (n < s.size() && n < pattern.size() && s[n] == pattern[n]) ++n;
    return n;
  };
  std::stable_sort(shapes.begin(), shapes.end(),
                   [&](const std::string& a, const std::string& b) { return common(a) > common(b); });
  const size_t shown = std::min<size_t>(shapes.size(), 4);
  std::string out;
  for (size_t i = 0; i < shown; ++i) out += str_cat(i == 0 ? "" : ", ", shapes[i]);
  return shapes.size() > shown ? out + ", ..." : out;
}

// Every rule of optim.groups must take at least one tensor, and every glob
// of its match must name one: a rule that takes nothing (a typo in a glob, a
// wrong ndim, an earlier rule that takes its tensors) would be ignored
// without a word.
void check_user_rules(const std::vector<ParamGroupRule>& rules, const std::vector<std::vector<int>>& members,
                      const ParamTable& table) {
  for (size_t r = 0; r < rules.size(); ++r) {
    const std::string rule = str_cat("optim.groups[", r, "]");
    for (const std::string& pattern : rules[r].match) {
      bool found = false;
      for (int i = 0; i < static_cast<int>(table.size()) && !found; ++i) found = glob_match(pattern, table.view(i).name);
      if (!found)
        throw ConfigError(str_cat(rule, ".match: '", pattern, "' matches no tensor of this model, so it would be "
                                  "ignored; the names are like ", some_tensor_names(pattern, table),
                                  " ('*' any run of characters, '?' one); fix the glob or remove it"));
    }
    if (!members[2 * r].empty() || !members[2 * r + 1].empty()) continue;
    int fits = 0, earlier = -1;
    for (int i = 0; i < static_cast<int>(table.size()); ++i) {
      if (!rule_fits(rules[r], table.view(i))) continue;
      ++fits;
      for (size_t o = 0; o < r && earlier < 0; ++o)
        if (rule_fits(rules[o], table.view(i))) earlier = static_cast<int>(o);
    }
    if (fits == 0)
      throw ConfigError(str_cat(rule, ": no tensor its match names has ndim ", rules[r].ndim,
                                ", so the rule takes none; fix ndim (0 = any rank) or the globs"));
    throw ConfigError(str_cat(rule, ": every tensor it matches is taken by optim.groups[", earlier,
                              "] (a tensor takes the first rule that fits), so the rule takes none; move it before "
                              "optim.groups[", earlier, "] or remove it"));
  }
}

// Every glob of optim.no_decay must name a tensor, as a rule's match must: a
// typo would leave the tensors it meant decaying without a word. The default
// list is left alone: it is written for lintrain's models, and a table
// without norm tensors (a test's) has nothing it should exempt.
void check_no_decay(const OptimConfig& cfg, const ParamTable& table) {
  if (cfg.no_decay == OptimConfig().no_decay) return;
  for (size_t g = 0; g < cfg.no_decay.size(); ++g) {
    const std::string& pattern = cfg.no_decay[g];
    bool found = false;
    for (int i = 0; i < static_cast<int>(table.size()) && !found; ++i) found = glob_match(pattern, table.view(i).name);
    if (!found)
      throw ConfigError(str_cat("optim.no_decay[", g, "]: '", pattern, "' matches no tensor of this model, so it "
                                "would exempt nothing from weight decay; the names are like ",
                                some_tensor_names(pattern, table), " ('*' any run of characters, '?' one); fix the "
                                "glob or remove it"));
  }
}

}  // namespace

std::vector<ParamGroupRule> effective_group_rules(const OptimConfig& cfg) {
  if (!cfg.groups.empty()) return cfg.groups;
  if (cfg.name == "galore" || cfg.name == "frugal") {
    ParamGroupRule projected;
    projected.match = {"model.layers.*.self_attn.*", "model.layers.*.mlp.*"};
    projected.ndim = 2;
    projected.optimizer = cfg.name;
    ParamGroupRule rest;
    rest.optimizer = "adamw";
    return {projected, rest};
  }
  ParamGroupRule all;
  all.optimizer = cfg.name;
  return {all};
}

std::vector<ParamGroup> resolve_param_groups(const OptimConfig& cfg, const ParamTable& table) {
  std::vector<ParamGroupRule> rules = effective_group_rules(cfg);
  ParamGroupRule fallback;  // tensors no rule matches
  fallback.optimizer = cfg.name;
  rules.push_back(fallback);
  for (ParamGroupRule& r : rules)
    if (r.optimizer.empty()) r.optimizer = cfg.name;

  // Two groups per rule: [2r] decaying, [2r + 1] no_decay.
  std::vector<std::vector<int>> members(2 * rules.size());
  for (int i = 0; i < static_cast<int>(table.size()); ++i) {
    const TensorView& v = table.view(i);
    size_t r = 0;
    while (!rule_fits(rules[r], v)) ++r;  // the fallback fits everything
    members[2 * r + (matches_any(cfg.no_decay, v.name) ? 1 : 0)].push_back(i);
  }
  check_user_rules(cfg.groups, members, table);
  check_no_decay(cfg, table);

  // Group names: the rule's optimizer, with the rule's number when two rules
  // share an optimizer, and ".no_decay" for the exempt half.
  auto base_name = [&](size_t r) {
    int same = 0, index = 0;
    for (size_t o = 0; o < rules.size(); ++o) {
      if (rules[o].optimizer != rules[r].optimizer) continue;
      if (members[2 * o].empty() && members[2 * o + 1].empty()) continue;
      if (o < r) ++index;
      ++same;
    }
    return same > 1 ? str_cat(rules[r].optimizer, ".", index) : rules[r].optimizer;
  };
  std::vector<ParamGroup> groups;
  for (size_t r = 0; r < rules.size(); ++r) {
    for (int half = 0; half < 2; ++half) {
      if (members[2 * r + half].empty()) continue;
      ParamGroup g;
      g.name = half ? base_name(r) + ".no_decay" : base_name(r);
      g.optimizer = rules[r].optimizer;
      g.views = members[2 * r + half];
      g.lr_scale = rules[r].lr_scale;
      g.weight_decay = half ? 0.0 : rules[r].weight_decay >= 0 ? rules[r].weight_decay : cfg.weight_decay;
      groups.push_back(std::move(g));
    }
  }
  return groups;
}

// ---- GroupedOptimizer ------------------------------------------------------------------

GroupedOptimizer::GroupedOptimizer(const Context& ctx, const OptimConfig& cfg, const ParamTable& table,
                                   uint64_t seed)
    : name_(cfg.name), groups_(resolve_param_groups(cfg, table)) {
  for (size_t i = 0; i < groups_.size(); ++i) {
    // Each group draws from its own stream, so adding a group elsewhere does
    // not change another group's random subspaces.
    const uint64_t group_seed = Rng::stream(seed, 0x6f70740000000000ull + i).next_u64();
    rules_.push_back(find_update_rule(groups_[i].optimizer).make(ctx, cfg, groups_[i], table, group_seed));
  }
}

void GroupedOptimizer::step(FlatBuffer& params, const FlatBuffer& grads, double lr) {
  ++t_;
  for (size_t i = 0; i < groups_.size(); ++i) rules_[i]->step(params, grads, lr * groups_[i].lr_scale);
}

size_t GroupedOptimizer::state_bytes() const {
  size_t total = 0;
  for (const auto& r : rules_) total += r->state_bytes();
  return total;
}

std::vector<StateTensor> GroupedOptimizer::state_tensors() {
  std::vector<StateTensor> out;
  for (size_t i = 0; i < groups_.size(); ++i)
    for (StateTensor& t : rules_[i]->state_tensors()) {
      t.name = groups_[i].name + "/" + t.name;
      out.push_back(std::move(t));
    }
  return out;
}

std::vector<StateWord> GroupedOptimizer::state_words() {
  std::vector<StateWord> out = {{"step", &t_}};
  for (size_t i = 0; i < groups_.size(); ++i)
    for (StateWord& w : rules_[i]->state_words()) {
      w.name = groups_[i].name + "/" + w.name;
      out.push_back(std::move(w));
    }
  return out;
}

// ---- memory report ----------------------------------------------------------------------

OptimizerMemory plan_optimizer_memory(const OptimConfig& cfg, const ParamTable& table) {
  OptimizerMemory mem;
  for (const ParamGroup& g : resolve_param_groups(cfg, table)) {
    GroupMemory gm;
    gm.group = g;
    for (int i : g.views) gm.params += table.view(i).numel;
    gm.state_floats = find_update_rule(g.optimizer).state_floats(cfg, g, table);
    mem.params += gm.params;
    mem.state_floats += gm.state_floats;
    mem.groups.push_back(std::move(gm));
  }
  ParamGroup everything;
  for (int i = 0; i < static_cast<int>(table.size()); ++i) everything.views.push_back(i);
  mem.adamw_state_floats = find_update_rule("adamw").state_floats(cfg, everything, table);
  return mem;
}

namespace {
std::string human_count(double x) {
  char buf[32];
  if (x >= 1e9) std::snprintf(buf, sizeof buf, "%.2fB", x / 1e9);
  else if (x >= 1e6) std::snprintf(buf, sizeof buf, "%.2fM", x / 1e6);
  else if (x >= 1e3) std::snprintf(buf, sizeof buf, "%.1fK", x / 1e3);
  else std::snprintf(buf, sizeof buf, "%.0f", x);
  return buf;
}
std::string mib(int64_t floats) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f MiB", static_cast<double>(floats) * 4.0 / 1048576.0);
  return buf;
}
}  // namespace

std::string format_optimizer_report(const OptimConfig& cfg, const OptimizerMemory& mem) {
  std::string out = str_cat("optimizer ", cfg.name, ": ", mem.groups.size(), " parameter group",
                            mem.groups.size() == 1 ? "" : "s", "\n");
  for (const GroupMemory& g : mem.groups) {
    char line[256];
    std::snprintf(line, sizeof line,
                  "  %-16s %-7s %3zu tensors %9s params  lr x%-5g wd %-7g state %11s  %5.2f B/param\n",
                  g.group.name.c_str(), g.group.optimizer.c_str(), g.group.views.size(),
                  human_count(static_cast<double>(g.params)).c_str(), g.group.lr_scale, g.group.weight_decay,
                  mib(g.state_floats).c_str(),
                  g.params ? 4.0 * static_cast<double>(g.state_floats) / static_cast<double>(g.params) : 0.0);
    out += line;
  }
  char total[256];
  std::snprintf(total, sizeof total,
                "  optimizer state %s = %.2f B/param (AdamW on every tensor: %s = %.2f B/param; %.1f%% of it)\n",
                mib(mem.state_floats).c_str(),
                4.0 * static_cast<double>(mem.state_floats) / static_cast<double>(mem.params),
                mib(mem.adamw_state_floats).c_str(),
                4.0 * static_cast<double>(mem.adamw_state_floats) / static_cast<double>(mem.params),
                100.0 * static_cast<double>(mem.state_floats) / static_cast<double>(mem.adamw_state_floats));
  out += total;
  return out;
}

}  // namespace lintrain
