// The FP8 scaling recipes (runtime/fp8_scaling.h): the delayed recipe's
// history and scales on a planted amax sequence against a direct reading of
// the formula (a window of the last amax_history_len amaxes), the current
// recipe, degenerate tensors, and the state's checkpoint entries.
#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <deque>
#include <vector>

#include "runtime/checkpoint/run_state.h"
#include "runtime/error.h"
#include "runtime/fp8_scaling.h"

using namespace lintrain;

namespace {

// The scale the formula gives for an amax, in double, rounded once.
float formula_scale(double fp8_max, double amax, int margin) {
  return static_cast<float>(fp8_max / amax / std::pow(2.0, margin));
}

}  // namespace

TEST(Fp8Scaling, ScaleFromAmaxIsTheFormula) {
  EXPECT_EQ(fp8_scale_from_amax(1.0f, Fp8Format::E4M3, 0), 448.0f);
  EXPECT_EQ(fp8_scale_from_amax(2.0f, Fp8Format::E5M2, 1), 57344.0f / 4);
  EXPECT_EQ(fp8_scale_from_amax(3.0f, Fp8Format::E4M3, 2), formula_scale(448, 3, 2));
  EXPECT_EQ(fp8_scale_from_amax(1e-44f, Fp8Format::E5M2, 0), FLT_MAX);  // capped, finite
  EXPECT_THROW(fp8_scale_from_amax(0.0f, Fp8Format::E4M3, 0), Error);
  EXPECT_THROW(fp8_scale_from_amax(NAN, Fp8Format::E4M3, 0), Error);
}

// A planted sequence through a history of 4: each roll's scale is the
// formula on the max of the last 4 recorded amaxes (or the latest one), and
// the history holds them in Transformer Engine's order (slot 0 zeroed for
// the next step, the newest at the end, older ones before it).
TEST(Fp8Scaling, DelayedFollowsTheHistoryWindow) {
  const std::vector<float> planted = {1.0f, 8.0f, 2.0f, 0.5f, 0.25f, 0.125f, 3.0f, 0.75f, 0.01f, 0.02f};
  for (AmaxCompute compute : {AmaxCompute::Max, AmaxCompute::MostRecent}) {
    for (int margin : {0, 2}) {
      DelayedScalingOptions opt;
      opt.amax_history_len = 4;
      opt.amax_compute = compute;
      opt.margin = margin;
      DelayedScaling s(Fp8Format::E4M3, opt);
      EXPECT_EQ(s.scale(), 1.0f);  // before any step
      std::deque<float> window;
      for (size_t step = 0; step < planted.size(); ++step) {
        // Two micro-batches: the step's amax is the larger.
        s.record({planted[step] / 2, 0});
        s.record({planted[step], 0});
        EXPECT_EQ(s.amax_history()[0], planted[step]);
        s.roll();
        window.push_back(planted[step]);
        if (window.size() > 4) window.pop_front();
        const double amax = compute == AmaxCompute::Max ? *std::max_element(window.begin(), window.end())
                                                        : window.back();
        EXPECT_EQ(s.scale(), formula_scale(448, amax, margin)) << "step " << step;
        EXPECT_EQ(s.scale_inv(), 1.0f / s.scale());
        // History after the roll: [0, older ..., newest].
        const std::vector<float>& h = s.amax_history();
        EXPECT_EQ(h[0], 0.0f);
        for (size_t j = 1; j < 4; ++j) {
          const int64_t age = 3 - static_cast<int64_t>(j);  // slot 3 = this step, slot 1 = two steps ago
          EXPECT_EQ(h[j], static_cast<int64_t>(step) >= age ? planted[step - age] : 0.0f) << step << " slot " << j;
        }
      }
      EXPECT_EQ(s.events().zero_amax, 0);
      EXPECT_EQ(s.events().nonfinite, 0);
    }
  }
}

// Degenerate steps keep a finite scale and are counted.
TEST(Fp8Scaling, DelayedDegenerateStepsKeepAFiniteScale) {
  DelayedScalingOptions opt;
  opt.amax_history_len = 2;
  DelayedScaling s(Fp8Format::E5M2, opt);
  s.record({0.0f, 0});  // all zeros: no scale yet, keeps 1
  s.roll();
  EXPECT_EQ(s.scale(), 1.0f);
  EXPECT_EQ(s.events().zero_amax, 1);
  s.record({4.0f, 0});
  s.roll();
  EXPECT_EQ(s.scale(), 57344.0f / 4);
  s.record({1000.0f, 3});  // NaN/inf in the tensor: its amax is not used
  s.record({NAN, 0});
  s.roll();
  EXPECT_EQ(s.events().nonfinite, 2);
  EXPECT_EQ(s.scale(), 57344.0f / 4);  // the window still holds 4
  s.record({0.0f, 0});
  s.roll();  // the window is now {nothing (the NaN step), 0}: keep the scale
  EXPECT_EQ(s.scale(), 57344.0f / 4);
  EXPECT_EQ(s.events().zero_amax, 2);
  s.record({1e-44f, 0});  // a float subnormal amax: the scale is capped, finite
  s.roll();
  EXPECT_EQ(s.scale(), FLT_MAX);
  for (float v : s.amax_history()) EXPECT_TRUE(std::isfinite(v));
  EXPECT_THROW(DelayedScaling(Fp8Format::E4M3, DelayedScalingOptions{0, AmaxCompute::Max, 0}), Error);
}

TEST(Fp8Scaling, CurrentScaleFromTheTensorsOwnAmax) {
  Fp8ScaleEvents ev;
  EXPECT_EQ(fp8_current_scale({2.0f, 0}, Fp8Format::E4M3, 0, &ev), 224.0f);
  EXPECT_EQ(fp8_current_scale({2.0f, 0}, Fp8Format::E4M3, 1, &ev), 112.0f);
  EXPECT_EQ(fp8_current_scale({0.0f, 0}, Fp8Format::E4M3, 0, &ev), 1.0f);
  EXPECT_EQ(ev.zero_amax, 1);
  EXPECT_EQ(fp8_current_scale({2.0f, 5}, Fp8Format::E5M2, 0, &ev), 28672.0f);
  EXPECT_EQ(ev.nonfinite, 1);
  EXPECT_EQ(fp8_current_scale({0.0f, 5}, Fp8Format::E5M2, 0, &ev), 1.0f);
}

TEST(Fp8Scaling, NamesParse) {
  EXPECT_EQ(fp8_recipe_from_name("delayed"), Fp8Recipe::Delayed);
  EXPECT_EQ(fp8_recipe_from_name("current"), Fp8Recipe::Current);
  EXPECT_EQ(fp8_recipe_from_name("blockwise"), Fp8Recipe::Blockwise);
  EXPECT_EQ(amax_compute_from_name("most_recent"), AmaxCompute::MostRecent);
  EXPECT_EQ(fp8_formats_from_name("hybrid").backward, Fp8Format::E5M2);
  EXPECT_EQ(fp8_formats_from_name("e4m3").backward, Fp8Format::E4M3);
  EXPECT_THROW(fp8_recipe_from_name("tensorwise"), Error);
  EXPECT_THROW(fp8_formats_from_name("e5m2"), Error);
}

// The state is three named arrays that a checkpoint reads and writes in place.
TEST(Fp8Scaling, StateIsNamedEntriesBorrowingTheLiveArrays) {
  DelayedScalingOptions opt;
  opt.amax_history_len = 8;
  DelayedScaling s(Fp8Format::E4M3, opt);
  RunState state;
  s.add_to(state, "trainer", "layers.0.attn.qkv.input");
  const StateEntry* scale = state.find("trainer", "layers.0.attn.qkv.input.fp8_scale");
  const StateEntry* hist = state.find("trainer", "layers.0.attn.qkv.input.fp8_amax_history");
  const StateEntry* ev = state.find("trainer", "layers.0.attn.qkv.input.fp8_events");
  ASSERT_TRUE(scale && hist && ev);
  EXPECT_EQ(scale->dtype, DType::F32);
  EXPECT_EQ(hist->shape, Shape({8}));
  EXPECT_EQ(ev->dtype, DType::I64);
  // A restore writes the live arrays: the next roll sees them.
  static_cast<float*>(hist->data)[5] = 2.0f;
  *static_cast<float*>(scale->data) = 7.0f;
  EXPECT_EQ(s.scale(), 7.0f);
  s.roll();
  EXPECT_EQ(s.scale(), 224.0f);
}
