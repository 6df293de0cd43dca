// AdamW, gradient clipping and LR schedules against float64 references of
// their formulas.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "optim/adamw.h"
#include "optim/param_groups.h"
#include "optim/schedule.h"
#include "runtime/ops.h"
#include "runtime/rng.h"

using namespace lintrain;

TEST(AdamW, MatchesFloat64ReferenceOverManySteps) {
  ParamTable table;
  table.add("w", {5, 7});  // a matrix: decayed
  table.add("n", {9});     // a norm weight: not decayed
  OptimConfig cfg;
  cfg.lr = 1e-2;
  cfg.weight_decay = 0.1;
  cfg.adamw.betas = {0.9, 0.95};
  cfg.adamw.eps = 1e-8;
  // The default rules: one AdamW group, with the norm ("n" matches no "*norm*",
  // so exempt it explicitly) in the no_decay group.
  cfg.no_decay = {"n"};
  auto opt_ptr = make_optimizer(Context{}, cfg, table);
  Optimizer& opt = *opt_ptr;
  FlatBuffer p(table), g(table);
  Rng rng(3);
  const int64_t n = table.buffer_numel();
  std::vector<double> P(n), M(n, 0), V(n, 0);
  for (const auto& v : table.views())
    for (int64_t i = 0; i < v.numel; ++i) p.at(v)[i] = static_cast<float>(rng.normal()), P[v.offset + i] = p.at(v)[i];
  for (int t = 1; t <= 50; ++t) {
    const double lr = cfg.lr * (1.0 + 0.1 * std::sin(t));  // a varying schedule
    for (const auto& v : table.views())
      for (int64_t i = 0; i < v.numel; ++i) g.at(v)[i] = static_cast<float>(rng.normal());
    opt.step(p, g, lr);
    for (const auto& v : table.views()) {
      const double wd = v.shape.size() >= 2 ? cfg.weight_decay : 0.0;
      for (int64_t i = 0; i < v.numel; ++i) {
        const int64_t k = v.offset + i;
        const double gi = g.at(v)[i];
        M[k] = 0.9 * M[k] + 0.1 * gi;
        V[k] = 0.95 * V[k] + 0.05 * gi * gi;
        const double mh = M[k] / (1 - std::pow(0.9, t)), vh = V[k] / (1 - std::pow(0.95, t));
        P[k] = P[k] * (1 - lr * wd) - lr * mh / (std::sqrt(vh) + cfg.adamw.eps);
      }
    }
  }
  // 50 steps of fp32 updates of size ~lr: accumulated rounding ~50 * 2^-24 * |p|.
  for (const auto& v : table.views())
    for (int64_t i = 0; i < v.numel; ++i) EXPECT_NEAR(p.at(v)[i], P[v.offset + i], 1e-5) << v.name << i;
  EXPECT_EQ(opt.step_count(), 50);
  EXPECT_EQ(opt.state_bytes(), 2 * sizeof(float) * (48 + 16)) << "two moments per tensor, each padded to 16";
  EXPECT_EQ(opt.state_tensors().size(), 4u);
}

TEST(Clip, ScalesToMaxNormOnlyWhenAbove) {
  ParamTable table;
  table.add("w", {3});
  FlatBuffer g(table);
  g.data()[0] = 3, g.data()[1] = 4;
  Arena arena;
  arena.reserve(grad_norm_squared_scratch_bytes(Device::CPU, g.numel()));
  Context ctx;
  ctx.scratch = &arena;
  const double norm = grad_global_norm(ctx, g);
  EXPECT_DOUBLE_EQ(norm, 5.0);
  EXPECT_EQ(clip_grad_norm(ctx, g, norm, 10.0), 1.0);
  EXPECT_EQ(g.data()[0], 3.0f);
  clip_grad_norm(ctx, g, norm, 1.0);
  EXPECT_NEAR(grad_global_norm(ctx, g), 1.0, 1e-6);
}

TEST(Schedule, WarmupThenCosineToMin) {
  ScheduleConfig s;
  s.kind = "cosine";
  s.warmup_steps = 10;
  s.min_lr_ratio = 0.1;
  EXPECT_DOUBLE_EQ(learning_rate(s, 1.0, 0, 100), 0.1);
  EXPECT_DOUBLE_EQ(learning_rate(s, 1.0, 9, 100), 1.0);
  EXPECT_DOUBLE_EQ(learning_rate(s, 1.0, 10, 100), 1.0);
  EXPECT_NEAR(learning_rate(s, 1.0, 99, 100), 0.1, 1e-12);
  // Halfway through the decay (101 steps: 90 after warmup, step 55 is p = 0.5).
  EXPECT_NEAR(learning_rate(s, 1.0, 55, 101), 0.55, 1e-12);
  for (int t = 11; t < 100; ++t) EXPECT_LE(learning_rate(s, 1.0, t, 100), learning_rate(s, 1.0, t - 1, 100));
  s.kind = "constant";
  EXPECT_DOUBLE_EQ(learning_rate(s, 2.0, 50, 100), 2.0);
}
