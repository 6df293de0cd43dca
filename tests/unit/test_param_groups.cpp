// Parameter groups (which update rule each tensor gets), the memory report,
// and the optimizer state's save/restore, for every registered update rule.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <vector>

#include "layers/model.h"
#include "optim/param_groups.h"
#include "optim/optimizer_state.h"
#include "runtime/checkpoint/reader.h"
#include "runtime/checkpoint/saver.h"
#include "runtime/error.h"
#include "runtime/rng.h"
#include "temp_dir.h"

using namespace lintrain;
using test::TempDir;

namespace {

ModelConfig small_model() {
  ModelConfig m;
  m.vocab_size = 64;
  m.hidden_size = 32;
  m.num_hidden_layers = 2;
  m.num_attention_heads = 2;
  m.intermediate_size = 48;
  m.layer_pattern = "LS";
  return m;
}

const ParamGroup* find_group(const std::vector<ParamGroup>& groups, const std::string& name) {
  for (const ParamGroup& g : groups)
    if (g.name == name) return &g;
  return nullptr;
}

std::vector<std::string> names_of(const ParamGroup& g, const ParamTable& t) {
  std::vector<std::string> out;
  for (int i : g.views) out.push_back(t.view(i).name);
  return out;
}

// Small settings so a few steps cross a projector refresh, a SPAM reset and a
// FRUGAL subspace change.
OptimConfig fast_cycling(const std::string& name) {
  OptimConfig c;
  c.name = name;
  c.weight_decay = 0.1;
  c.galore.rank = 4;
  c.galore.update_proj_gap = 3;
  c.spam.reset_interval = 4;
  c.spam.warmup = 2;
  c.spam.clip_delay = 1;
  c.frugal.update_gap = 3;
  return c;
}

}  // namespace

TEST(Glob, StarQuestionAndLiterals) {
  EXPECT_TRUE(glob_match("*", "model.norm.weight"));
  EXPECT_TRUE(glob_match("*norm*", "model.layers.0.input_layernorm.weight"));
  EXPECT_TRUE(glob_match("model.layers.*.mlp.*", "model.layers.11.mlp.up_proj.weight"));
  EXPECT_FALSE(glob_match("model.layers.*.mlp.*", "model.layers.11.self_attn.q_proj.weight"));
  EXPECT_TRUE(glob_match("model.layers.?.self_attn.*", "model.layers.3.self_attn.o_proj.weight"));
  EXPECT_FALSE(glob_match("model.layers.?.self_attn.*", "model.layers.12.self_attn.o_proj.weight"));
  EXPECT_TRUE(glob_match("lm_head.weight", "lm_head.weight"));
  EXPECT_FALSE(glob_match("lm_head.weight", "lm_head.weights"));
  EXPECT_FALSE(glob_match("", "x"));
  EXPECT_TRUE(glob_match("a*b*c", "aXXbYYbc"));  // backtracking past a false 'b'
  // fnmatch's sets and quoting.
  EXPECT_TRUE(glob_match("model.layers.[0-2].mlp.*", "model.layers.1.mlp.up_proj.weight"));
  EXPECT_FALSE(glob_match("model.layers.[0-2].mlp.*", "model.layers.3.mlp.up_proj.weight"));
  EXPECT_TRUE(glob_match("model.layers.[!0].*", "model.layers.5.mlp.up_proj.weight"));
  EXPECT_TRUE(glob_match("a\\*b", "a*b"));
  EXPECT_FALSE(glob_match("a\\*b", "aXb"));
}

TEST(ParamGroups, AdamwLionSpamDefaultToEveryTensorWithNormsExempt) {
  const ParamTable t = make_param_table(small_model());
  for (const char* name : {"adamw", "lion", "spam"}) {
    OptimConfig c;
    c.name = name;
    c.weight_decay = 0.1;
    const auto groups = resolve_param_groups(c, t);
    ASSERT_EQ(groups.size(), 2u) << name;
    EXPECT_EQ(groups[0].name, name);
    EXPECT_EQ(groups[0].weight_decay, 0.1);
    EXPECT_EQ(groups[1].name, std::string(name) + ".no_decay");
    EXPECT_EQ(groups[1].weight_decay, 0.0);
    for (const std::string& n : names_of(groups[1], t)) EXPECT_NE(n.find("norm"), std::string::npos) << n;
    EXPECT_EQ(groups[0].views.size() + groups[1].views.size(), t.size());
  }
}

TEST(ParamGroups, GaloreAndFrugalProjectAttentionAndMlpMatricesOnly) {
  const ParamTable t = make_param_table(small_model());
  for (const char* name : {"galore", "frugal"}) {
    OptimConfig c;
    c.name = name;
    const auto groups = resolve_param_groups(c, t);
    const ParamGroup* proj = find_group(groups, name);
    const ParamGroup* rest = find_group(groups, "adamw");
    const ParamGroup* norms = find_group(groups, "adamw.no_decay");
    ASSERT_TRUE(proj && rest && norms) << name;
    EXPECT_EQ(find_group(groups, std::string(name) + ".no_decay"), nullptr) << "no 1-D tensor is projected";
    for (int i : proj->views) {
      const TensorView& v = t.view(i);
      EXPECT_EQ(v.shape.size(), 2u) << v.name;
      EXPECT_TRUE(v.name.find(".self_attn.") != std::string::npos || v.name.find(".mlp.") != std::string::npos);
    }
    // 2 layers x (q, k, v, o, mlp gate, up, down) + the linear layer's output gate g_proj.
    EXPECT_EQ(proj->views.size(), 15u);
    EXPECT_EQ(names_of(*rest, t), (std::vector<std::string>{"model.embed_tokens.weight", "lm_head.weight"}));
    EXPECT_EQ(norms->views.size(), 5u);  // 2 per layer + the final norm
  }
}

TEST(ParamGroups, FirstMatchingRuleWinsAndRulesSetLrAndDecay) {
  const ParamTable t = make_param_table(small_model());
  OptimConfig c;
  c.name = "adamw";
  c.weight_decay = 0.05;
  ParamGroupRule head;
  head.match = {"lm_head.weight"};
  head.optimizer = "lion";
  head.lr_scale = 0.5;
  ParamGroupRule mlp;
  mlp.match = {"*.mlp.*", "lm_head.weight"};  // lm_head is taken by the first rule
  mlp.ndim = 2;
  mlp.weight_decay = 0.0;
  c.groups = {head, mlp};
  const auto groups = resolve_param_groups(c, t);
  const ParamGroup* lion = find_group(groups, "lion");
  ASSERT_NE(lion, nullptr);
  EXPECT_EQ(names_of(*lion, t), std::vector<std::string>{"lm_head.weight"});
  EXPECT_EQ(lion->lr_scale, 0.5);
  EXPECT_EQ(lion->weight_decay, 0.05);
  // Two rules use adamw: the MLP rule and the fallback; they are numbered.
  const ParamGroup* a0 = find_group(groups, "adamw.0");
  const ParamGroup* a1 = find_group(groups, "adamw.1");
  ASSERT_TRUE(a0 && a1);
  EXPECT_EQ(a0->views.size(), 6u);
  EXPECT_EQ(a0->weight_decay, 0.0);
  EXPECT_EQ(a1->weight_decay, 0.05);
  size_t total = 0;
  for (const ParamGroup& g : groups) total += g.views.size();
  EXPECT_EQ(total, t.size()) << "every tensor is in exactly one group";
}

TEST(ParamGroups, UnknownOptimizerInARuleIsAConfigError) {
  const ParamTable t = make_param_table(small_model());
  OptimConfig c;
  ParamGroupRule r;
  r.optimizer = "sgdm";
  c.groups = {r};
  try {
    make_optimizer(Context{}, c, t);
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("unknown optimizer 'sgdm'; valid: adamw"), std::string::npos) << e.what();
  }
}

TEST(MemoryReport, PlanEqualsWhatEachOptimizerAllocates) {
  const ParamTable t = make_param_table(small_model());
  for (const UpdateRuleInfo& rule : update_rules()) {
    const OptimConfig c = fast_cycling(rule.name);
    const OptimizerMemory mem = plan_optimizer_memory(c, t);
    auto opt = make_optimizer(Context{}, c, t, 7);
    EXPECT_EQ(static_cast<size_t>(mem.state_floats) * sizeof(float), opt->state_bytes()) << rule.name;
    EXPECT_EQ(mem.params, t.param_count());
    const std::string report = format_optimizer_report(c, mem);
    EXPECT_NE(report.find(str_cat("optimizer ", rule.name, ": ")), std::string::npos) << report;
    EXPECT_NE(report.find("B/param (AdamW on every tensor: "), std::string::npos) << report;
  }
  const OptimizerMemory adamw = plan_optimizer_memory(fast_cycling("adamw"), t);
  EXPECT_EQ(adamw.state_floats, adamw.adamw_state_floats);
  EXPECT_LT(plan_optimizer_memory(fast_cycling("lion"), t).state_floats, adamw.state_floats * 6 / 10);
}

// Train a small model a few steps, save the optimizer state (and weights) to a
// file mid-run, restore both into fresh objects, and continue: every later
// loss and the final weights must be bit-identical to the uninterrupted run.
// The run crosses a GaLore refresh, a SPAM reset and a FRUGAL subspace change.
// The optimizer's state through the real checkpoint path: saved as the
// checkpoint of `step` in `dir` (synchronously), and restored from the newest
// checkpoint there.
void save_state(Optimizer& opt, const std::string& dir, int64_t step) {
  RunState state;
  add_optimizer_state(opt, state);
  SaverOptions o;
  o.job = new_job_id();
  o.async = false;
  CheckpointSaver saver(o, directory_target(dir, 0));
  saver.save(step, state, /*wait=*/true);
  const std::vector<SaveReport> reports = saver.take_reports();
  ASSERT_EQ(reports.size(), 1u);
  ASSERT_TRUE(reports[0].ok) << reports[0].error;
}
void load_state(Optimizer& opt, const std::string& dir) {
  RunState state;
  add_optimizer_state(opt, state);
  restore_run_state(open_checkpoint_path(dir, nullptr), state);
}

TEST(OptimizerState, SaveRestoreMidRunContinuesBitIdentically) {
  const ModelConfig mc = small_model();
  const int B = 2, T = 16, kSteps = 8, kSaveAt = 4;
  std::vector<std::vector<int32_t>> tokens(kSteps), targets(kSteps);
  Rng rng(11);
  for (int s = 0; s < kSteps; ++s)
    for (int i = 0; i < B * T; ++i) {
      tokens[s].push_back(static_cast<int32_t>(rng.below(mc.vocab_size)));
      targets[s].push_back(static_cast<int32_t>(rng.below(mc.vocab_size)));
    }
  TempDir dir("optstate");
  for (const UpdateRuleInfo& rule : update_rules()) {
    const OptimConfig c = fast_cycling(rule.name);
    auto run_steps = [&](LinearLlama& model, Optimizer& opt, int from, int to, std::vector<double>& losses) {
      for (int s = from; s < to; ++s) {
        model.grads().zero();
        const CrossEntropyStats st = model.forward_backward(tokens[s].data(), targets[s].data(), 1.0f / (B * T));
        losses.push_back(st.loss_sum);
        opt.step(model.params(), model.grads(), 3e-3);
      }
    };
    LinearLlama a(mc, B, T);
    a.init_weights(5);
    auto opt_a = make_optimizer(a.context(), c, a.table(), 9);
    std::vector<double> losses_a, losses_b;
    run_steps(a, *opt_a, 0, kSaveAt, losses_a);
    const std::string path = dir.file(rule.name);
    save_state(*opt_a, path, kSaveAt);
    std::vector<float> saved_params(a.params().data(), a.params().data() + a.params().numel());
    run_steps(a, *opt_a, kSaveAt, kSteps, losses_a);

    LinearLlama b(mc, B, T);
    b.init_weights(123);  // different: everything must come from the save
    auto opt_b = make_optimizer(b.context(), c, b.table(), 9);
    std::memcpy(b.params().data(), saved_params.data(), saved_params.size() * sizeof(float));
    load_state(*opt_b, path);
    EXPECT_EQ(opt_b->step_count(), kSaveAt) << rule.name;
    run_steps(b, *opt_b, kSaveAt, kSteps, losses_b);
    ASSERT_EQ(losses_b.size(), static_cast<size_t>(kSteps - kSaveAt));
    for (int s = 0; s < kSteps - kSaveAt; ++s)
      EXPECT_EQ(losses_a[static_cast<size_t>(kSaveAt + s)], losses_b[static_cast<size_t>(s)]) << rule.name << " step " << s;
    EXPECT_EQ(std::memcmp(a.params().data(), b.params().data(), saved_params.size() * sizeof(float)), 0) << rule.name;
  }
}

TEST(OptimizerState, MismatchedCheckpointIsRefusedAndChangesNothing) {
  const ParamTable t = make_param_table(small_model());
  TempDir dir("optstate_bad");
  FlatBuffer p(t), g(t);
  for (int64_t i = 0; i < g.numel(); ++i) g.data()[i] = 0.01f * static_cast<float>(i % 7);
  auto adamw = make_optimizer(Context{}, fast_cycling("adamw"), t);
  adamw->step(p, g, 1e-3);
  save_state(*adamw, dir.str(), 1);

  // Another optimizer: its tensors are missing and the checkpoint's are foreign.
  auto lion = make_optimizer(Context{}, fast_cycling("lion"), t);
  try {
    load_state(*lion, dir.str());
    FAIL();
  } catch (const IoError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("does not fit this run"), std::string::npos) << msg;
    EXPECT_NE(msg.find("trainer tensor 'optimizer/lion/"), std::string::npos) << msg;
    EXPECT_NE(msg.find("in the checkpoint but not in this run (trainer tensor 'optimizer/adamw"), std::string::npos)
        << msg;
  }
  // Same optimizer, other groups: a missing tensor, and the target keeps its state.
  OptimConfig other = fast_cycling("adamw");
  other.no_decay = {};
  auto fresh = make_optimizer(Context{}, other, t);
  const std::vector<StateTensor> before = fresh->state_tensors();
  try {
    load_state(*fresh, dir.str());
    FAIL();
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("missing from the checkpoint"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("resume with the same model.* and optim.* keys"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(fresh->step_count(), 0);
  for (const StateTensor& s : before)
    for (int64_t i = 0; i < s.numel; ++i) ASSERT_EQ(s.data[i], 0.0f) << s.name;
  // A directory without checkpoints.
  TempDir empty("optstate_empty");
  EXPECT_THROW(load_state(*adamw, empty.str()), IoError);
}

// A rule of optim.groups that would take no tensor is refused, naming the
// rule and what the model has, instead of being ignored.
TEST(ParamGroups, ARuleThatTakesNoTensorIsRefused) {
  const ParamTable t = make_param_table(small_model());
  auto error_of = [&](std::vector<ParamGroupRule> rules) -> std::string {
    OptimConfig c;
    c.groups = std::move(rules);
    try {
      resolve_param_groups(c, t);
    } catch (const ConfigError& e) {
      return e.what();
    }
    ADD_FAILURE() << "expected a ConfigError";
    return "";
  };
  ParamGroupRule typo;
  typo.match = {"*.mlp.*", "model.layer.*"};  // "layers"; the first glob alone would hide it
  EXPECT_EQ(error_of({typo}),
            "optim.groups[0].match: 'model.layer.*' matches no tensor of this model, so it would be ignored; the "
            "names are like model.layers.*.input_layernorm.weight, model.layers.*.self_attn.q_proj.weight, "
            "model.layers.*.self_attn.k_proj.weight, model.layers.*.self_attn.v_proj.weight, ... ('*' any run of "
            "characters, '?' one); fix the glob or remove it");
  ParamGroupRule norms_2d;
  norms_2d.match = {"*norm*"};
  norms_2d.ndim = 2;
  EXPECT_EQ(error_of({norms_2d}), "optim.groups[0]: no tensor its match names has ndim 2, so the rule takes none; fix "
                                  "ndim (0 = any rank) or the globs");
  ParamGroupRule all, norms;
  norms.match = {"*norm*"};
  norms.optimizer = "lion";
  EXPECT_EQ(error_of({all, norms}),
            "optim.groups[1]: every tensor it matches is taken by optim.groups[0] (a tensor takes the first rule that "
            "fits), so the rule takes none; move it before optim.groups[0] or remove it");
  // The defaults of optim.name are not the user's rules: galore's on a model
  // without projections (all tensors 1-D here) is not an error.
  ParamTable vectors;
  vectors.add("model.norm.weight", {16});
  OptimConfig galore;
  galore.name = "galore";
  EXPECT_EQ(resolve_param_groups(galore, vectors).size(), 1u);
  // The memory plan, which runs before anything is allocated, refuses the same.
  OptimConfig c;
  c.groups = {typo};
  EXPECT_THROW(plan_optimizer_memory(c, t), ConfigError);
}

// So is a glob of optim.no_decay that names no tensor: the tensors it meant
// would silently keep their weight decay.
TEST(ParamGroups, ANoDecayGlobThatMatchesNoTensorIsRefused) {
  const ParamTable t = make_param_table(small_model());
  OptimConfig c;
  c.no_decay = {"*norm*", "*.bias"};  // this model has no biases
  try {
    resolve_param_groups(c, t);
    ADD_FAILURE() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()),
              "optim.no_decay[1]: '*.bias' matches no tensor of this model, so it would exempt nothing from weight "
              "decay; the names are like model.embed_tokens.weight, model.layers.*.input_layernorm.weight, "
              "model.layers.*.self_attn.q_proj.weight, model.layers.*.self_attn.k_proj.weight, ... ('*' any run "
              "of characters, '?' one); fix the glob or remove it");
  }
  EXPECT_THROW(plan_optimizer_memory(c, t), ConfigError);
  // Globs that each name a tensor, and the empty list, are fine.
  c.no_decay = {"*norm*", "model.embed_tokens.weight"};
  EXPECT_EQ(resolve_param_groups(c, t).size(), 2u);
  c.no_decay = {};
  EXPECT_EQ(resolve_param_groups(c, t).size(), 1u);
}
