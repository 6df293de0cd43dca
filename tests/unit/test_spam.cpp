// SPAM against a float64 reference of its formula over several momentum
// resets (dense and sparse momentum), and its pieces one at a time: a planted
// gradient spike clipped to sign(g) sqrt(theta v), moments zero right after a
// reset, no clipping within clip_delay of a reset, the cosine warm-up factor,
// the state size, and a mid-run state copy that continues bit-identically.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iterator>
#include <string>
#include <vector>

#include "optim/spam.h"
#include "runtime/error.h"
#include "runtime/rng.h"
#include "optim_test_util.h"

using namespace lintrain;
using test::fill_normal;
using test::whole_group;

namespace {

StateTensor state_of(Optimizer& opt, const std::string& name) {
  for (const StateTensor& s : opt.state_tensors())
    if (s.name == name) return s;
  ADD_FAILURE() << "no state tensor " << name;
  return {};
}

std::vector<float> copy_of(const StateTensor& s) { return std::vector<float>(s.data, s.data + s.numel); }

// The entries of a tensor of `numel` elements in a "<param>/mask" state tensor
// (bit i % 16 of word i / 16), in increasing order.
std::vector<int64_t> mask_entries(const StateTensor& mask, int64_t numel) {
  std::vector<int64_t> out;
  for (int64_t i = 0; i < numel; ++i) {
    const float word = mask.data[i / 16];
    EXPECT_EQ(word, std::floor(word));
    if ((static_cast<uint32_t>(word) >> (i % 16)) & 1u) out.push_back(i);
  }
  return out;
}

// The float64 reference, written out from the paper's algorithm with the step
// indexing of the official SPAM.py: moments and weights per buffer element;
// `active` lists, per tensor, the entries that hold moments this step (all of
// them when dense).
struct SpamReference {
  SpamConfig c;
  double wd;
  std::vector<double> P, M, V;
  int clipped = 0;

  SpamReference(const SpamConfig& cfg, double weight_decay, const FlatBuffer& p)
      : c(cfg), wd(weight_decay), P(p.data(), p.data() + p.numel()), M(P.size(), 0.0), V(P.size(), 0.0) {}

  double scale(int t) const {
    const int d = c.reset_interval;
    if (d == 0 || t < d) return 1.0;  // no reset yet: no warm-up at the start of training
    const int j = t % d;              // steps since the reset before step d * (t / d)
    return j < c.warmup ? 1.0 - 0.99 * (1.0 + std::cos(M_PI * j / (c.warmup + 1.0))) / 2.0 : 1.0;
  }

  void step(int t, double lr, const ParamTable& table, const FlatBuffer& g,
            const std::vector<std::vector<int64_t>>& active) {
    const double b1 = c.betas[0], b2 = c.betas[1];
    const int phase = c.reset_interval ? t % c.reset_interval : t;
    const bool clip = c.threshold != 0 && phase >= c.clip_delay;
    const double step_size = lr * scale(t) * std::sqrt(1.0 - std::pow(b2, t)) / (1.0 - std::pow(b1, t));
    for (size_t vi = 0; vi < table.size(); ++vi) {
      const TensorView& v = table.view(static_cast<int>(vi));
      for (int64_t i : active[vi]) {
        const size_t k = static_cast<size_t>(v.offset + i);
        double gi = g.at(v)[i];
        if (clip && gi * gi > c.threshold * V[k]) {
          gi = (gi > 0 ? 1.0 : -1.0) * std::sqrt(c.threshold * V[k]);
          ++clipped;
        }
        M[k] = b1 * M[k] + (1 - b1) * gi;
        V[k] = b2 * V[k] + (1 - b2) * gi * gi;
        P[k] -= step_size * M[k] / (std::sqrt(V[k]) + c.eps);
        P[k] *= 1.0 - lr * wd;  // decoupled decay after the update, as SPAM.py
      }
    }
    if (c.reset_interval && (t + 1) % c.reset_interval == 0) {  // zero moments for step t + 1
      std::fill(M.begin(), M.end(), 0.0);
      std::fill(V.begin(), V.end(), 0.0);
    }
  }
};

SpamConfig cycling_config() {
  SpamConfig c;
  c.betas = {0.9, 0.95};
  c.reset_interval = 12;  // resets before steps 12 and 24
  c.warmup = 5;
  c.clip_delay = 3;
  // theta = 4 (not 5000) so that normal gradients against a young v are
  // clipped often; the reference test asserts that clipping happened.
  c.threshold = 4;
  return c;
}

// Runs `steps` steps of SPAM and the reference side by side and compares
// weights and moments after every step.
void run_against_reference(const SpamConfig& spam, int steps, int64_t rows = 8, int64_t cols = 10) {
  const int64_t numel = rows * cols;
  ParamTable table;
  table.add("w", {rows, cols});  // sparse when density < 1
  table.add("b", {7});      // 1-D: always dense
  OptimConfig cfg;
  cfg.spam = spam;
  const double wd = 0.1;
  auto opt = kSpamRule.make(Context{}, cfg, whole_group(table, "spam", wd), table, 17);
  const bool sparse = spam.density < 1.0;
  const int64_t capacity = Spam::sparse_capacity(spam.density, numel);
  FlatBuffer p(table), g(table);
  Rng rng(4);
  fill_normal(p, table, rng);
  SpamReference ref(spam, wd, p);
  std::vector<float> prev_mask;
  for (int t = 1; t <= steps; ++t) {
    const double lr = 1e-2 * (1.0 + 0.5 * std::sin(t));
    fill_normal(g, table, rng);
    std::vector<std::vector<int64_t>> active(2);
    for (int64_t i = 0; i < 7; ++i) active[1].push_back(i);
    if (sparse) {
      const StateTensor mask = state_of(*opt, "w/mask");
      active[0] = mask_entries(mask, numel);
      ASSERT_EQ(static_cast<int64_t>(active[0].size()), capacity) << "step " << t;
      // A mask changes only in a reset: after steps 11 and 23.
      if (!prev_mask.empty()) {
        EXPECT_EQ(copy_of(mask) != prev_mask, t == 12 || t == 24) << "step " << t;
      }
      prev_mask = copy_of(mask);
    } else {
      for (int64_t i = 0; i < numel; ++i) active[0].push_back(i);
    }
    const std::vector<float> before(p.data(), p.data() + p.numel());
    opt->step(p, g, lr);
    ref.step(t, lr, table, g, active);

    // 30 f32 steps of size ~lr on |p| ~ 1: accumulated rounding ~30 * 2^-24 * |p|;
    // clipping is continuous in g and v, so it adds no jumps.
    double max_err = 0;
    for (const TensorView& v : table.views())
      for (int64_t i = 0; i < v.numel; ++i) max_err = std::max(max_err, std::abs(p.at(v)[i] - ref.P[static_cast<size_t>(v.offset + i)]));
    EXPECT_LT(max_err, 1e-5) << "step " << t;
    // Moments: f32 EMAs of O(1) values, rounding ~30 * 2^-24.
    for (size_t vi = 0; vi < 2; ++vi) {
      const TensorView& v = table.view(static_cast<int>(vi));
      const StateTensor m = state_of(*opt, v.name + "/exp_avg"), s = state_of(*opt, v.name + "/exp_avg_sq");
      for (size_t k = 0; k < active[vi].size(); ++k) {
        const size_t e = static_cast<size_t>(v.offset + active[vi][k]);
        EXPECT_NEAR(m.data[k], ref.M[e], 1e-5) << v.name << " entry " << active[vi][k] << " step " << t;
        EXPECT_NEAR(s.data[k], ref.V[e], 1e-5) << v.name << " entry " << active[vi][k] << " step " << t;
      }
    }
    // Entries without momentum are not touched at all (no step, no decay).
    if (sparse)
      for (int64_t i = 0; i < numel; ++i)
        if (!std::binary_search(active[0].begin(), active[0].end(), i)) {
          EXPECT_EQ(p.data()[i], before[static_cast<size_t>(i)]) << "entry " << i << " step " << t;
        }
  }
  EXPECT_GT(ref.clipped, 20) << "the settings must exercise the spike clipping";
  EXPECT_EQ(opt->step_count(), steps);
}

}  // namespace

TEST(Spam, DenseMatchesFloat64ReferenceAcrossTwoResets) { run_against_reference(cycling_config(), 30); }

TEST(Spam, SparseMatchesFloat64ReferenceAcrossTwoResets) {
  SpamConfig c = cycling_config();
  c.density = 0.3;
  EXPECT_EQ(Spam::sparse_capacity(c.density, 80), 24) << "floor(0.3 * 80)";
  run_against_reference(c, 30);
}

// 150 x 130: 1219 mask words, more than one parallel chunk of the sparse
// update, and a last word only 12 bits of which are entries.
TEST(Spam, SparseLargeMatrixMatchesFloat64Reference) {
  SpamConfig c = cycling_config();
  c.density = 0.2;
  run_against_reference(c, 14, 150, 130);
}

TEST(Spam, SparseMaskHoldsExactlyDensityCountAndIsRedrawnAtResets) {
  ParamTable table;
  table.add("w", {40, 50});
  OptimConfig cfg;
  cfg.spam.density = 0.1;
  cfg.spam.reset_interval = 3;
  auto opt = kSpamRule.make(Context{}, cfg, whole_group(table, "spam", 0.0), table, 3);
  FlatBuffer p(table), g(table);
  Rng rng(8);
  std::vector<std::vector<int64_t>> masks = {mask_entries(state_of(*opt, "w/mask"), 2000)};
  for (int t = 1; t <= 6; ++t) {
    fill_normal(g, table, rng);
    opt->step(p, g, 1e-3);
    masks.push_back(mask_entries(state_of(*opt, "w/mask"), 2000));
  }
  for (const auto& m : masks) {
    EXPECT_EQ(m.size(), 200u) << "floor(0.1 * 2000) distinct entries";
    EXPECT_TRUE(std::is_sorted(m.begin(), m.end()));
  }
  // Redrawn after steps 2 and 5 (before the reset steps 3 and 6), kept otherwise.
  for (int t = 1; t <= 6; ++t) EXPECT_EQ(masks[static_cast<size_t>(t)] != masks[static_cast<size_t>(t - 1)], t == 2 || t == 5) << t;
  // Two independent draws of 200 of 2000 share about 20 entries, not all 200.
  std::vector<int64_t> common;
  std::set_intersection(masks[1].begin(), masks[1].end(), masks[2].begin(), masks[2].end(), std::back_inserter(common));
  EXPECT_LT(common.size(), 60u);
  // The same seed draws the same masks; another seed others.
  auto same = kSpamRule.make(Context{}, cfg, whole_group(table, "spam", 0.0), table, 3);
  auto other = kSpamRule.make(Context{}, cfg, whole_group(table, "spam", 0.0), table, 4);
  EXPECT_EQ(mask_entries(state_of(*same, "w/mask"), 2000), masks[0]);
  EXPECT_NE(mask_entries(state_of(*other, "w/mask"), 2000), masks[0]);
}

TEST(Spam, DamagedMaskIsRefusedBeforeAnyUpdate) {
  ParamTable table;
  table.add("b", {7});  // dense, before the sparse tensor in the group
  table.add("w", {8, 10});
  OptimConfig cfg;
  cfg.spam.density = 0.3;
  auto opt = kSpamRule.make(Context{}, cfg, whole_group(table, "spam", 0.0), table, 1);
  FlatBuffer p(table), g(table);
  for (int64_t i = 0; i < g.numel(); ++i) g.data()[i] = 1.0f;
  const StateTensor mask = state_of(*opt, "w/mask");
  // One entry too many (the lowest clear bit of the first word not full).
  int w = 0;
  while (mask.data[w] == 65535.0f) ++w;
  const uint32_t bits = static_cast<uint32_t>(mask.data[w]);
  mask.data[w] = static_cast<float>(bits | (~bits & (bits + 1)));
  try {
    opt->step(p, g, 1e-3);
    FAIL() << "a mask with 25 entries for 24 moments must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[spam] the momentum mask of 'w' holds 25 entries"), std::string::npos) << e.what();
  }
  EXPECT_EQ(opt->step_count(), 0);
  for (int64_t i = 0; i < p.numel(); ++i) ASSERT_EQ(p.data()[i], 0.0f) << "b, updated first, is untouched too";
  mask.data[w] = 0.5f;  // not an integer
  EXPECT_THROW(opt->step(p, g, 1e-3), Error);
}

TEST(Spam, PlantedSpikeIsClippedToSqrtThetaV) {
  ParamTable table;
  table.add("x", {16});
  OptimConfig cfg;  // the defaults: theta 5000, clip_delay 20, reset_interval 500
  auto opt = kSpamRule.make(Context{}, cfg, whole_group(table, "spam", 0.0), table, 0);
  FlatBuffer p(table), g(table);
  Rng rng(6);
  for (int t = 1; t <= 24; ++t) {  // v settles on gradients ~1e-3
    fill_normal(g, table, rng, 1e-3);
    opt->step(p, g, 1e-3);
  }
  const std::vector<float> m0 = copy_of(state_of(*opt, "x/exp_avg")), v0 = copy_of(state_of(*opt, "x/exp_avg_sq"));
  fill_normal(g, table, rng, 1e-3);
  g.data()[3] = 10.0f;   // 1e4 x the others
  g.data()[9] = -10.0f;  // and a negative one
  ASSERT_TRUE(Spam::clips_at(cfg.spam, 25));
  opt->step(p, g, 1e-3);
  const StateTensor m = state_of(*opt, "x/exp_avg"), v = state_of(*opt, "x/exp_avg_sq");
  const double b1 = 0.9, b2 = 0.999, theta = 5000;
  for (int i = 0; i < 16; ++i) {
    double gi = g.data()[i];
    if (i == 3 || i == 9) {
      ASSERT_GT(gi * gi, theta * v0[static_cast<size_t>(i)]);
      gi = (gi > 0 ? 1 : -1) * std::sqrt(theta * v0[static_cast<size_t>(i)]);  // v before this step
    }
    // The f32 state is this double expression of the f32 inputs up to a few
    // roundings of 2^-24 of each term (coefficients, sqrt, products): 1e-6 of
    // the terms' magnitudes, which m's two terms of opposite sign can exceed.
    const double m_terms[2] = {b1 * m0[static_cast<size_t>(i)], (1 - b1) * gi};
    const double v_terms[2] = {b2 * v0[static_cast<size_t>(i)], (1 - b2) * gi * gi};
    EXPECT_NEAR(m.data[i], m_terms[0] + m_terms[1], 1e-6 * (std::abs(m_terms[0]) + std::abs(m_terms[1]))) << i;
    EXPECT_NEAR(v.data[i], v_terms[0] + v_terms[1], 1e-6 * (v_terms[0] + v_terms[1])) << i;
  }
  EXPECT_GT(m.data[3], 0.0f);
  EXPECT_LT(m.data[9], 0.0f);
  EXPECT_LT(v.data[3], 1e-3 * (1 - b2) * 100.0) << "the unclipped spike would give v ~ (1 - b2) * 100";
}

TEST(Spam, ClippingScheduleFollowsOfficialStepIndexing) {
  SpamConfig c;
  c.reset_interval = 10;
  c.clip_delay = 3;
  // Steps 1, 2 (the first clip_delay - 1 of training) and 10, 11, 12 (the
  // reset step and the next clip_delay - 1) do not clip.
  const std::vector<bool> expected = {false, false, true, true, true, true, true, true, true,  // 1..9
                                      false, false, false, true, true};                       // 10..14
  for (size_t t = 1; t <= expected.size(); ++t) EXPECT_EQ(Spam::clips_at(c, t), expected[t - 1]) << t;
  c.threshold = 0;
  for (uint64_t t = 1; t <= 30; ++t) EXPECT_FALSE(Spam::clips_at(c, t)) << "threshold 0 never clips";
  c.threshold = 5000;
  c.reset_interval = 0;  // no resets: only the start of training is spared
  EXPECT_FALSE(Spam::clips_at(c, 2));
  EXPECT_TRUE(Spam::clips_at(c, 3));
  EXPECT_TRUE(Spam::clips_at(c, 1000));
}

TEST(Spam, NoClippingWithinClipDelayAfterReset) {
  ParamTable table;
  table.add("x", {8});
  OptimConfig cfg;
  cfg.spam.reset_interval = 10;
  cfg.spam.clip_delay = 3;
  auto opt = kSpamRule.make(Context{}, cfg, whole_group(table, "spam", 0.0), table, 0);
  FlatBuffer p(table), g(table);
  Rng rng(9);
  // A spike of 1e4x on a fresh entry at each of these steps; clipped only at
  // steps 3 and 13 (3 steps after the start and after the reset before step 10).
  const std::vector<std::pair<int, bool>> spikes = {{1, false}, {2, false}, {3, true}, {10, false},
                                                    {11, false}, {12, false}, {13, true}};
  const double b2 = 0.999, theta = 5000;
  for (int t = 1; t <= 14; ++t) {
    fill_normal(g, table, rng, 1e-3);
    int entry = -1;
    bool clip = false;
    for (size_t k = 0; k < spikes.size(); ++k)
      if (spikes[k].first == t) entry = static_cast<int>(k), clip = spikes[k].second;
    if (entry >= 0) g.data()[entry] = 10.0f;
    const std::vector<float> v0 = copy_of(state_of(*opt, "x/exp_avg_sq"));
    opt->step(p, g, 1e-3);
    if (entry < 0) continue;
    const double vp = v0[static_cast<size_t>(entry)], gi = clip ? std::sqrt(theta * vp) : 10.0;
    const double v_expected = b2 * vp + (1 - b2) * gi * gi;
    // f32 evaluation of the same expression: a few roundings of 2^-24.
    EXPECT_NEAR(state_of(*opt, "x/exp_avg_sq").data[entry], v_expected, 1e-6 * v_expected) << "step " << t;
  }
}

TEST(Spam, MomentsAreZeroRightAfterEachReset) {
  ParamTable table;
  table.add("x", {4});
  OptimConfig cfg;
  cfg.spam.reset_interval = 5;
  cfg.spam.warmup = 2;
  cfg.spam.threshold = 0;
  auto opt = kSpamRule.make(Context{}, cfg, whole_group(table, "spam", 0.0), table, 0);
  FlatBuffer p(table), g(table);
  Rng rng(10);
  const double lr = 1.0, b1 = 0.9, b2 = 0.999;
  for (int t = 1; t <= 12; ++t) {
    fill_normal(g, table, rng);
    const std::vector<float> p0(p.data(), p.data() + 4);
    opt->step(p, g, lr);
    // The reset of step 5 (and 10) happens at the end of step 4 (9): between
    // step_count() == 4 and step 5 the moments are exactly zero.
    const bool reset = t == 4 || t == 9;
    for (const char* name : {"x/exp_avg", "x/exp_avg_sq"}) {
      const StateTensor s = state_of(*opt, name);
      for (int i = 0; i < 4; ++i) {
        if (reset) {
          EXPECT_EQ(s.data[i], 0.0f) << name << " after step " << t;
        } else {
          EXPECT_NE(s.data[i], 0.0f) << name << " after step " << t;
        }
      }
    }
    if (t == 5 || t == 10) {
      // The first step after a reset: m = (1 - b1) g, v = (1 - b2) g^2, a
      // warm-up factor of 0.01, and the bias correction of step t, not of step 1
      // (which would make the update exactly 0.01 lr sign(g)).
      for (int i = 0; i < 4; ++i) {
        const double gi = g.data()[i];
        const double update = lr * 0.01 * std::sqrt(1 - std::pow(b2, t)) / (1 - std::pow(b1, t)) * (1 - b1) * gi /
                              (std::sqrt((1 - b2) * gi * gi) + 1e-6);
        // p ~ 1 after a few steps of lr = 1: its f32 rounding ~1e-7 against an update ~1e-2.
        EXPECT_NEAR(p.data()[i] - p0[static_cast<size_t>(i)], -update, 1e-5) << "step " << t << " entry " << i;
      }
    }
  }
  EXPECT_EQ(opt->step_count(), 12);
}

TEST(Spam, WarmupFactorIsTheOfficialCosine) {
  SpamConfig c;
  c.reset_interval = 12;
  c.warmup = 5;
  // 1 - 0.99 (1 + cos(pi j / 6)) / 2 for j = t mod 12 < 5, once a reset happened.
  const double r3 = std::sqrt(3.0);
  const std::vector<std::pair<uint64_t, double>> expected = {
      {1, 1.0},  {11, 1.0},  {12, 0.01}, {13, 1 - 0.99 * (1 + r3 / 2) / 2}, {14, 1 - 0.99 * 1.5 / 2},
      {15, 1 - 0.99 / 2}, {16, 1 - 0.99 * 0.5 / 2}, {17, 1.0}, {23, 1.0}, {24, 0.01}, {28, 1 - 0.99 * 0.5 / 2}, {29, 1.0}};
  for (const auto& [t, s] : expected) EXPECT_NEAR(Spam::warmup_scale(c, t), s, 1e-15) << t;
  c.warmup = 0;
  EXPECT_EQ(Spam::warmup_scale(c, 12), 1.0) << "no warm-up";
  c.warmup = 5;
  c.reset_interval = 0;
  EXPECT_EQ(Spam::warmup_scale(c, 12), 1.0) << "no resets";

  // The same factor in the updates: with p = 0 before each step and no decay,
  // the update of a run with warm-up over one without is s(t).
  ParamTable table;
  table.add("x", {6});
  OptimConfig with, without;
  with.spam = c;
  with.spam.reset_interval = 12;
  without.spam = with.spam;
  without.spam.warmup = 0;
  auto a = kSpamRule.make(Context{}, with, whole_group(table, "spam", 0.0), table, 0);
  auto b = kSpamRule.make(Context{}, without, whole_group(table, "spam", 0.0), table, 0);
  FlatBuffer pa(table), pb(table), g(table);
  Rng rng(12);
  for (int t = 1; t <= 18; ++t) {
    fill_normal(g, table, rng);
    pa.zero();
    pb.zero();
    a->step(pa, g, 1e-2);
    b->step(pb, g, 1e-2);
    // Two f32 updates, each rounded a few times at 2^-24.
    for (int i = 0; i < 6; ++i)
      EXPECT_NEAR(pa.data()[i] / pb.data()[i], Spam::warmup_scale(with.spam, static_cast<uint64_t>(t)), 1e-6) << t;
  }
}

TEST(Spam, StateFloatsAreTwoPerParameterOrTwoPerMaskedEntryPlusMask) {
  ParamTable table;
  table.add("w", {64, 64});
  table.add("b", {7});
  OptimConfig cfg;
  const ParamGroup group = whole_group(table, "spam", 0.0);
  auto dense = kSpamRule.make(Context{}, cfg, group, table, 0);
  EXPECT_EQ(static_cast<int64_t>(dense->state_bytes() / sizeof(float)), kSpamRule.state_floats(cfg, group, table));
  EXPECT_EQ(dense->state_bytes() / sizeof(float), 2u * (4096 + 16)) << "two moments, each padded to 16";
  EXPECT_EQ(dense->state_words().size(), 1u) << "step only: dense SPAM draws nothing";

  cfg.spam.density = 0.25;
  auto sparse = kSpamRule.make(Context{}, cfg, group, table, 0);
  EXPECT_EQ(static_cast<int64_t>(sparse->state_bytes() / sizeof(float)), kSpamRule.state_floats(cfg, group, table));
  // w: 2 x 1024 moments + 4096 / 16 mask words = (2 x 0.25 + 1/16) per parameter; b stays dense.
  EXPECT_EQ(sparse->state_bytes() / sizeof(float), 2u * 1024 + 256 + 2u * 16);
  EXPECT_EQ(sparse->state_words().size(), 7u) << "step and rng/0..5";
  EXPECT_EQ(state_of(*sparse, "w/exp_avg").shape, (Shape{1024}));
  EXPECT_EQ(state_of(*sparse, "b/exp_avg").shape, (Shape{7}));
}

TEST(Spam, StateCopiedMidRunContinuesBitIdenticallyAcrossResets) {
  for (const double density : {1.0, 0.3}) {
    ParamTable table;
    table.add("w", {8, 10});
    table.add("b", {7});
    OptimConfig cfg;
    cfg.spam.reset_interval = 6;  // resets after steps 5, 11 and 17
    cfg.spam.warmup = 3;
    cfg.spam.clip_delay = 2;
    cfg.spam.threshold = 4;
    cfg.spam.density = density;
    const ParamGroup group = whole_group(table, "spam", 0.1);
    auto a = kSpamRule.make(Context{}, cfg, group, table, 21);
    FlatBuffer pa(table), pb(table);
    Rng rng(13);
    fill_normal(pa, table, rng);
    std::vector<FlatBuffer> grads;
    for (int t = 0; t < 20; ++t) {
      grads.emplace_back(table);
      fill_normal(grads.back(), table, rng);
    }
    auto run = [&](Optimizer& opt, FlatBuffer& p, int from, int to) {
      for (int t = from; t < to; ++t) opt.step(p, grads[static_cast<size_t>(t)], 1e-2 * (1.0 + 0.1 * t));
    };
    run(*a, pa, 0, 4);
    // Another seed: B's masks and RNG must come from the copy.
    auto b = kSpamRule.make(Context{}, cfg, group, table, 22);
    std::memcpy(pb.data(), pa.data(), static_cast<size_t>(pa.numel()) * sizeof(float));
    const auto ta = a->state_tensors(), tb = b->state_tensors();
    ASSERT_EQ(ta.size(), tb.size());
    for (size_t i = 0; i < ta.size(); ++i) {
      ASSERT_EQ(ta[i].name, tb[i].name);
      ASSERT_EQ(ta[i].numel, tb[i].numel);
      std::memcpy(tb[i].data, ta[i].data, static_cast<size_t>(ta[i].numel) * sizeof(float));
    }
    const auto wa = a->state_words(), wb = b->state_words();
    ASSERT_EQ(wa.size(), wb.size());
    for (size_t i = 0; i < wa.size(); ++i) {
      ASSERT_EQ(wa[i].name, wb[i].name);
      *wb[i].value = *wa[i].value;
    }
    EXPECT_EQ(b->step_count(), 4);
    run(*a, pa, 4, 20);
    run(*b, pb, 4, 20);
    EXPECT_EQ(std::memcmp(pa.data(), pb.data(), static_cast<size_t>(pa.numel()) * sizeof(float)), 0) << density;
    const auto sa = a->state_tensors(), sb = b->state_tensors();
    for (size_t i = 0; i < sa.size(); ++i)
      EXPECT_EQ(std::memcmp(sa[i].data, sb[i].data, static_cast<size_t>(sa[i].numel) * sizeof(float)), 0) << sa[i].name;
  }
}
