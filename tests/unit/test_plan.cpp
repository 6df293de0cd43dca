// `lintrain plan` against what the run really allocates and sends: on three
// configs (linear, hybrid, hybrid + GaLore) the plan's parameter, gradient,
// optimizer and activation bytes equal the allocated objects' (the model, its
// attention cores, the optimizer), on one rank and on the last of SP = 2; and
// its bytes per collective equal the communicators' counters after one
// training step (grad_accum = 2 micro-batches) at SP = 2 x DP = 2 run as
// threads, the step made of the trainer's parts (ProcessGrid, LinearLlama on
// the SP group, GradReducer on the all-ranks group).
//
// Tolerance: none. The plan reads the same layout (param table, optimizer
// state layouts, ops' scratch sizes) and mirrors the constructors' buffer
// pieces, so any difference is a drift between plan.cpp and a constructor.
#include <gtest/gtest.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "launch/fp8_training.h"
#include "launch/plan.h"
#include "layers/linear_attention.h"
#include "layers/model.h"
#include "layers/softmax_attention.h"
#include "optim/optimizer.h"
#include "parallel/grad_reducer.h"
#include "parallel/process_grid.h"
#include "parallel/thread_communicator.h"
#include "runtime/config/config.h"
#include "runtime/rng.h"
#include "sp_test_group.h"

using namespace lintrain;

namespace {

RunConfig config(const std::string& pattern, const std::string& optimizer, const std::string& compute = "fp32",
                 const std::string& variant = "lightning") {
  const std::string yaml = str_cat(R"(
run: {name: plan-test, out_dir: /tmp/plan-test, seed: 7}
model:
  vocab_size: 256
  hidden_size: 32
  num_hidden_layers: 4
  num_attention_heads: 4
  num_key_value_heads: 2
  intermediate_size: 40
  layer_pattern: ")", pattern, R"("
  linear_attention: {variant: )", variant, R"(, block_size: 4, gate_rank: 3}
data: {kind: text, path: /usr/share/common-licenses, seq_len: 24}
train: {steps: 1, micro_batch: 2, grad_accum: 2}
optim: {name: )", optimizer, R"(, lr: 1.0e-3, galore: {rank: 4, update_proj_gap: 10}}
precision: {compute: )", compute, R"(}
)");
  return parse_run_config(yaml, {}, "test_plan");
}

struct Case {
  const char* name;
  const char* pattern;
  const char* optimizer;
  const char* variant = "lightning";
};
const Case kCases[] = {{"linear", "L", "adamw"},
                       {"hybrid", "LLLS", "adamw"},
                       {"hybrid+galore", "LLLS", "galore"},
                       {"gla hybrid", "LLLS", "adamw", "gla"}};

// Bytes the model and its attention cores allocate for activations on this
// rank: LinearLlama::activation_bytes() (its block, ids, head workspace,
// scratch arena, the cores' saved bytes) plus the cores' workspaces, from
// cores built alone with the same sizes (the model does not expose its own).
double allocated_activations(const RunConfig& cfg, LinearLlama& model, int T, Communicator* sp) {
  double bytes = static_cast<double>(model.activation_bytes());
  Arena arena(Device::CPU);
  const Context ctx{Device::CPU, nullptr, &arena};
  for (int i = 0; i < cfg.model.num_hidden_layers; ++i) {
    if (cfg.model.layer_kind(i) == 'L') {
      LinearAttentionCore core(ctx, make_linear_attention_spec(cfg.model, i), cfg.train.micro_batch, T, sp);
      bytes += static_cast<double>(core.workspace_bytes());
    } else {
      SoftmaxAttentionCore core(ctx, cfg.model, cfg.train.micro_batch, T, sp);
      bytes += static_cast<double>(core.workspace_bytes());
    }
  }
  return bytes;
}

void expect_memory_matches(const RunConfig& cfg, const RunPlan& plan, LinearLlama& model, int T, Communicator* sp,
                           const char* what) {
  EXPECT_EQ(plan.params, model.table().param_count()) << what;
  EXPECT_EQ(plan.param_bytes, 4.0 * static_cast<double>(model.params().numel())) << what;
  EXPECT_EQ(plan.grad_bytes, 4.0 * static_cast<double>(model.grads().numel())) << what;
  const auto optimizer = make_optimizer(model.context(), cfg.optim, model.table(), cfg.run.seed);
  EXPECT_EQ(plan.optimizer_bytes, static_cast<double>(optimizer->state_bytes())) << what;
  EXPECT_EQ(plan.activations.model_total(), allocated_activations(cfg, model, T, sp)) << what;
}

TEST(Plan, MemoryMatchesTheAllocatedObjectsOnOneRank) {
  for (const Case& c : kCases) {
    const RunConfig cfg = config(c.pattern, c.optimizer, "fp32", c.variant);
    const RunPlan plan = plan_run(cfg, 1, 1);
    LinearLlama model(cfg.model, cfg.train.micro_batch, cfg.data.seq_len);
    expect_memory_matches(cfg, plan, model, cfg.data.seq_len, nullptr, c.name);
    EXPECT_TRUE(plan.collectives.empty()) << c.name;
    if (std::string(c.pattern) == "L") EXPECT_EQ(plan.activations.softmax_attention, 0) << c.name;
    else EXPECT_GT(plan.activations.softmax_attention, 0) << c.name;
  }
}

// bf16 compute adds the rounded weight copy, the residual gradient's rounding
// and the bf16 GEMMs' scratch.
TEST(Plan, MemoryMatchesTheAllocatedObjectsWithBf16Compute) {
  const RunConfig cfg = config("LLLS", "adamw", "bf16");
  const RunPlan plan = plan_run(cfg, 1, 1);
  LinearLlama model(cfg.model, cfg.train.micro_batch, cfg.data.seq_len, true);
  expect_memory_matches(cfg, plan, model, cfg.data.seq_len, nullptr, "hybrid bf16");
  EXPECT_EQ(plan.compute_copy_bytes, plan.param_bytes);
  EXPECT_GT(plan.activations.model_total(), plan_run(config("LLLS", "adamw"), 1, 1).activations.model_total());
}

// precision.fp8: the emulation's scratch (dequantised operands) in the arena,
// for every recipe and for a selection that leaves the MLP out; the delayed
// recipe's host state per GEMM.
TEST(Plan, Fp8MemoryMatchesTheAllocatedObjects) {
  for (const char* recipe : {"delayed", "current", "blockwise"}) {
    for (const bool mlp_excluded : {false, true}) {
      RunConfig cfg = config("LLLS", "adamw", "bf16");
      cfg.precision.fp8.enabled = true;
      cfg.precision.fp8.recipe = recipe;
      cfg.precision.fp8.amax_history_len = 16;
      if (mlp_excluded) cfg.precision.fp8.exclude = {"*.mlp.*"};
      const RunPlan plan = plan_run(cfg, 1, 1);
      LinearLlama model(cfg.model, cfg.train.micro_batch, cfg.data.seq_len, true);
      model.enable_fp8(fp8_model_options(cfg.precision.fp8, nullptr));
      const std::string what = str_cat("fp8 ", recipe, mlp_excluded ? " without the MLP" : "");
      expect_memory_matches(cfg, plan, model, cfg.data.seq_len, nullptr, what.c_str());
      EXPECT_EQ(plan.fp8_gemms, static_cast<int>(model.fp8_gemms().size())) << what;
      // Per layer q|k|v, o, gate|up, down, and g for the three lightning layers' output gate.
      EXPECT_EQ(plan.fp8_gemms, (mlp_excluded ? 4 * 2 : 4 * 4) + 3) << what;
      EXPECT_EQ(plan.fp8_state_bytes, std::string(recipe) == "delayed" ? 3.0 * plan.fp8_gemms * (4 * 17 + 16) : 0.0)
          << what;
    }
  }
}

TEST(Plan, GlaMemoryMatchesWithBf16Compute) {  // the forget gate's bf16 GEMM scratch too
  const RunConfig cfg = config("LLS", "adamw", "bf16", "gla");
  const RunPlan plan = plan_run(cfg, 1, 1);
  LinearLlama model(cfg.model, cfg.train.micro_batch, cfg.data.seq_len, true);
  expect_memory_matches(cfg, plan, model, cfg.data.seq_len, nullptr, "gla hybrid bf16");
}

TEST(Plan, MemoryMatchesTheAllocatedObjectsOnTheLastSpRank) {
  for (const Case& c : kCases) {
    const RunConfig cfg = config(c.pattern, c.optimizer, "fp32", c.variant);
    const RunPlan plan = plan_run(cfg, 2, 1);
    const int T = cfg.data.seq_len / 2;
    test::SpTestGroup::run(2, [&](Communicator& sp, int rank) {
      LinearLlama model(cfg.model, cfg.train.micro_batch, T, false, &sp);
      if (rank == 1) expect_memory_matches(cfg, plan, model, T, &sp, c.name);
    });
  }
}

double sum_of(const RunPlan& p, const std::string& prefix, bool forward, bool backward) {
  double s = 0;
  for (const PlanCollective& c : p.collectives)
    if (c.what.rfind(prefix, 0) == 0) s += (forward ? c.forward : 0) + (backward ? c.backward : 0);
  return s;
}

// One training step at SP 2 x DP 2 (4 ranks as threads), as launch/trainer.cpp
// runs it: grad_accum forward_backward calls, the gradient reducer marked on
// the last, finish(). Returns rank 0's counters: SP group, all-ranks group.
std::pair<CommStats, CommStats> one_step_counters(RunConfig cfg) {
  cfg.parallel.sequence = 2;
  cfg.parallel.data = 2;
  std::pair<CommStats, CommStats> out;
  std::mutex mu;
  run_ranks(4, [&](Communicator& world) {
    ProcessGrid grid(cfg.parallel, world);
    const int B = cfg.train.micro_batch, T = cfg.data.seq_len / 2;
    LinearLlama model(cfg.model, B, T, false, &grid.sp());
    model.init_weights(cfg.run.seed);
    GradReducer reducer(model.table(), model.grads(), world);
    Rng rng(11 + grid.dp_rank());
    std::vector<int32_t> tokens(static_cast<size_t>(B) * T), targets(tokens.size());
    grid.sp().reset_stats();
    world.reset_stats();
    model.grads().zero();
    for (int m = 0; m < cfg.train.grad_accum; ++m) {
      for (auto& t : tokens) t = static_cast<int32_t>(rng.below(cfg.model.vocab_size));
      for (auto& t : targets) t = static_cast<int32_t>(rng.below(cfg.model.vocab_size));
      if (m == cfg.train.grad_accum - 1)
        model.set_grads_ready_hook([&](const std::vector<int>& views) {
          for (int v : views) reducer.mark_ready(v);
        });
      model.forward_backward(tokens.data(), targets.data(), 1.0f / static_cast<float>(tokens.size()));
    }
    reducer.finish();
    if (world.rank() == 0) {
      std::lock_guard<std::mutex> lock(mu);
      out = {grid.sp().stats(), world.stats()};
    }
  });
  return out;
}

TEST(Plan, CollectiveBytesMatchTheCountersAfterOneStepAtSp2Dp2) {
  for (const Case& c : kCases) {
    const RunConfig cfg = config(c.pattern, c.optimizer, "fp32", c.variant);
    const RunPlan plan = plan_run(cfg, 2, 2);
    const auto [sp, all] = one_step_counters(cfg);
    // LASP-2's and LASP-2H's all-gathers (forward and backward) on the SP group.
    EXPECT_EQ(static_cast<double>(sp.all_gather_bytes),
              sum_of(plan, "LASP-2 all-gather", true, true) + sum_of(plan, "LASP-2H all-gather", true, true))
        << c.name;
    EXPECT_EQ(static_cast<double>(sp.reduce_scatter_bytes), sum_of(plan, "LASP-2H reduce-scatter", true, true))
        << c.name;
    EXPECT_EQ(sp.all_reduce_bytes, 0u) << c.name;
    EXPECT_EQ(static_cast<double>(all.all_reduce_bytes), sum_of(plan, "gradient all-reduce", true, true)) << c.name;
    EXPECT_GT(all.all_reduce_bytes, 0u) << c.name;
    if (std::string(c.pattern) == "L") EXPECT_EQ(sp.reduce_scatter_bytes, 0u) << c.name;
    else EXPECT_GT(sp.reduce_scatter_bytes, 0u) << c.name;
  }
}

TEST(Plan, RefusesAnSpThatDoesNotDivideTheSequence) {
  const RunConfig cfg = config("LLLS", "adamw");
  EXPECT_THROW(plan_run(cfg, 5, 1), ConfigError);
}

TEST(Plan, MemorySizes) {
  EXPECT_EQ(parse_memory_size("80GiB"), 80.0 * 1024 * 1024 * 1024);
  EXPECT_EQ(parse_memory_size("512MiB"), 512.0 * 1024 * 1024);
  EXPECT_EQ(parse_memory_size("40GB"), 40e9);
  EXPECT_EQ(parse_memory_size("1000"), 1000.0);
  EXPECT_THROW(parse_memory_size("lots"), UsageError);
  EXPECT_THROW(parse_memory_size("80XB"), UsageError);
  EXPECT_THROW(parse_memory_size("-1GiB"), UsageError);
}

}  // namespace
