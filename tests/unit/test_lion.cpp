// Lion against a float64 reference of its formula (sign of the interpolated
// momentum, decoupled decay before the update), sign(0) = 0, its state size,
// and a mid-run state copy that continues bit-identically.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "optim/lion.h"
#include "optim/param_groups.h"
#include "runtime/rng.h"
#include "optim_test_util.h"

using namespace lintrain;
using test::fill_normal;
using test::whole_group;

namespace {

double sign(double x) { return x > 0 ? 1.0 : x < 0 ? -1.0 : 0.0; }

}  // namespace

TEST(Lion, MatchesFloat64ReferenceOverManySteps) {
  ParamTable table;
  table.add("w", {5, 7});  // decayed
  table.add("n", {9});     // in the no_decay group
  OptimConfig cfg;
  cfg.name = "lion";
  cfg.weight_decay = 0.1;
  cfg.no_decay = {"n"};
  cfg.lion.betas = {0.9, 0.99};
  auto opt = make_optimizer(Context{}, cfg, table);
  FlatBuffer p(table), g(table);
  Rng rng(5);
  fill_normal(p, table, rng);
  const int64_t n = table.buffer_numel();
  std::vector<double> P(p.data(), p.data() + n), M(static_cast<size_t>(n), 0.0);
  double min_abs_c = 1e300;
  for (int t = 1; t <= 40; ++t) {
    const double lr = 1e-2 * (1.0 + 0.5 * std::sin(t));  // a varying schedule
    fill_normal(g, table, rng);
    opt->step(p, g, lr);
    for (const auto& v : table.views()) {
      const double wd = v.name == "w" ? cfg.weight_decay : 0.0;
      for (int64_t i = 0; i < v.numel; ++i) {
        const size_t k = static_cast<size_t>(v.offset + i);
        const double gi = g.at(v)[i];
        const double c = 0.9 * M[k] + 0.1 * gi;
        min_abs_c = std::min(min_abs_c, std::abs(c));
        P[k] = P[k] * (1.0 - lr * wd) - lr * sign(c);
        M[k] = 0.99 * M[k] + 0.01 * gi;
      }
    }
  }
  // sign() is discontinuous at 0: the f32 and f64 c differ by ~1e-7 (|m|, |g| ~ 1),
  // so the signs agree when every |c| is above 1e-6. Asserted, so another seed
  // cannot silently land on the discontinuity.
  ASSERT_GT(min_abs_c, 1e-6);
  // 40 steps of size ~1e-2 on |p| ~ 1: accumulated f32 rounding ~40 * 2^-24 * |p|.
  for (const auto& v : table.views())
    for (int64_t i = 0; i < v.numel; ++i) EXPECT_NEAR(p.at(v)[i], P[static_cast<size_t>(v.offset + i)], 1e-5) << v.name << i;
  // The momentum: f32 EMA of O(1) values, rounding ~40 * 2^-24.
  for (const StateTensor& s : opt->state_tensors()) {
    const TensorView& v = table.at(s.name.substr(s.name.find('/') + 1, s.name.rfind('/') - s.name.find('/') - 1));
    for (int64_t i = 0; i < v.numel; ++i) EXPECT_NEAR(s.data[i], M[static_cast<size_t>(v.offset + i)], 1e-5) << s.name;
  }
  EXPECT_EQ(opt->step_count(), 40);
}

TEST(Lion, ZeroGradientAndZeroMomentumOnlyDecays) {
  ParamTable table;
  table.add("w", {3, 4});
  OptimConfig cfg;
  for (const double wd : {0.0, 0.1}) {
    auto opt = kLionRule.make(Context{}, cfg, whole_group(table, "lion", wd), table, 0);
    FlatBuffer p(table), g(table);  // g = 0, and the momentum starts at 0
    Rng rng(1);
    fill_normal(p, table, rng);
    const std::vector<float> before(p.data(), p.data() + 12);
    const double lr = 0.01;
    opt->step(p, g, lr);
    for (int i = 0; i < 12; ++i) {
      // c = 0, sign(0) = 0: no step of size lr, only p * (1 - lr wd) in f32 (one rounding).
      if (wd == 0.0) {
        EXPECT_EQ(p.data()[i], before[static_cast<size_t>(i)]) << i;
      } else {
        EXPECT_FLOAT_EQ(p.data()[i], static_cast<float>(before[static_cast<size_t>(i)] * (1.0 - lr * wd))) << i;
      }
    }
    for (const StateTensor& s : opt->state_tensors())
      for (int64_t i = 0; i < s.numel; ++i) EXPECT_EQ(s.data[i], 0.0f);
  }
}

TEST(Lion, StateIsOneFloatPerParameter) {
  ParamTable table;
  table.add("w", {5, 7});
  table.add("n", {9});
  OptimConfig cfg;
  const ParamGroup group = whole_group(table, "lion", 0.0);
  auto opt = kLionRule.make(Context{}, cfg, group, table, 0);
  EXPECT_EQ(static_cast<int64_t>(opt->state_bytes() / sizeof(float)), kLionRule.state_floats(cfg, group, table));
  EXPECT_EQ(opt->state_bytes(), sizeof(float) * (48 + 16)) << "exp_avg per tensor, each padded to 16";
  ASSERT_EQ(opt->state_tensors().size(), 2u);
  EXPECT_EQ(opt->state_tensors()[0].name, "w/exp_avg");
  EXPECT_EQ(opt->state_tensors()[0].shape, (Shape{5, 7}));
}

TEST(Lion, StateCopiedMidRunContinuesBitIdentically) {
  ParamTable table;
  table.add("w", {6, 5});
  table.add("n", {7});
  OptimConfig cfg;
  const ParamGroup group = whole_group(table, "lion", 0.05);
  auto a = kLionRule.make(Context{}, cfg, group, table, 0);
  FlatBuffer pa(table), pb(table), g(table);
  Rng rng(2);
  fill_normal(pa, table, rng);
  std::vector<FlatBuffer> grads;
  auto run = [&](Optimizer& opt, FlatBuffer& p, int from, int to) {
    for (int t = from; t < to; ++t) opt.step(p, grads[static_cast<size_t>(t)], 1e-3 * (t + 1));
  };
  for (int t = 0; t < 12; ++t) {
    grads.emplace_back(table);
    fill_normal(grads.back(), table, rng);
  }
  run(*a, pa, 0, 5);
  auto b = kLionRule.make(Context{}, cfg, group, table, 0);
  std::memcpy(pb.data(), pa.data(), static_cast<size_t>(pa.numel()) * sizeof(float));
  const auto ta = a->state_tensors(), tb = b->state_tensors();
  ASSERT_EQ(ta.size(), tb.size());
  for (size_t i = 0; i < ta.size(); ++i) std::memcpy(tb[i].data, ta[i].data, static_cast<size_t>(ta[i].numel) * sizeof(float));
  const auto wa = a->state_words(), wb = b->state_words();
  ASSERT_EQ(wa.size(), wb.size());
  for (size_t i = 0; i < wa.size(); ++i) *wb[i].value = *wa[i].value;
  run(*a, pa, 5, 12);
  run(*b, pb, 5, 12);
  EXPECT_EQ(b->step_count(), 12);
  EXPECT_EQ(std::memcmp(pa.data(), pb.data(), static_cast<size_t>(pa.numel()) * sizeof(float)), 0);
}
