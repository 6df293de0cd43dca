// FP8 scaling recipes (issue 14): how the per-tensor or per-block scale of a
// quantised GEMM operand is chosen. Host logic only: the amaxes come from the
// fp8_amax / fp8_quantize_blockwise ops (runtime/ops.h), the scales go back
// into fp8_encode. A value x is stored as fp8(x * scale) and read back as
// fp8_value * (1 / scale).
//
//   delayed   (Transformer Engine's DelayedScaling): each tensor keeps an amax
//             history of amax_history_len steps; slot 0 holds this step's
//             amax. After the step (roll()): amax = max over the history
//             (amax_compute max) or slot 0 (most_recent); scale =
//             (fp8_max / amax) / 2^margin; then the history rolls by one
//             (slot 0 moves to the end, slot 1 to slot 0 ...) and slot 0 is
//             zeroed for the next step. So a step quantises with the scale
//             the previous steps chose.
//   current   per-tensor scale from this tensor's own amax, same formula.
//   blockwise (DeepSeek-V3): power-of-two scales per 1 x 128 tile
//             (activations, gradients) or 128 x 128 block (weights), chosen
//             inside fp8_quantize_blockwise (fp8_math::pow2_scale).
//
// Degenerate tensors never put a NaN or an infinity into a scale, and are
// counted: an amax of 0 (all zeros) keeps the previous scale (1 at first);
// a tensor with NaN or +-inf values does not enter the history (its slot
// keeps the finite amaxes recorded before in the step, 0 if none); a scale
// past the float range is capped at FLT_MAX.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/fp8_math.h"
#include "runtime/ops.h"  // Fp8Amax

namespace lintrain {

class RunState;

enum class Fp8Recipe { Delayed, Current, Blockwise };
enum class AmaxCompute { Max, MostRecent };

// Parses the config's names (precision.fp8.*): "delayed" | "current" |
// "blockwise", "max" | "most_recent"; throws Error naming the choices.
Fp8Recipe fp8_recipe_from_name(const std::string& name);
AmaxCompute amax_compute_from_name(const std::string& name);

// The formats of the forward operands and of the gradients:
// precision.fp8.format hybrid = (E4M3, E5M2), e4m3 = (E4M3, E4M3).
struct Fp8Formats {
  Fp8Format forward = Fp8Format::E4M3;
  Fp8Format backward = Fp8Format::E5M2;
};
Fp8Formats fp8_formats_from_name(const std::string& name);

// (fp8_max / amax) / 2^margin, in double, rounded to f32, capped at FLT_MAX.
// amax must be finite and > 0; margin >= 0.
float fp8_scale_from_amax(float amax, Fp8Format format, int margin);

// What the recipes met that they did not turn into a scale.
struct Fp8ScaleEvents {
  int64_t zero_amax = 0;  // an amax of 0: the previous scale (or 1) was kept
  int64_t nonfinite = 0;  // a tensor with NaN/inf values: its amax was not used
};

// The current recipe: the scale of a tensor from its own amax (fp8_amax).
// A tensor with no finite nonzero value gets 1 (counted as zero_amax); its
// NaN/inf values are counted (nonfinite) but the finite amax still sets the
// scale (the encoder keeps NaN and saturates inf on its own).
float fp8_current_scale(const Fp8Amax& amax, Fp8Format format, int margin, Fp8ScaleEvents* events = nullptr);

struct DelayedScalingOptions {
  int amax_history_len = 1024;  // >= 1
  AmaxCompute amax_compute = AmaxCompute::Max;
  int margin = 0;               // >= 0
};

// The delayed recipe's state for one tensor. The state is three arrays that a
// checkpoint saves and restores as they are (add_to): scale (1 f32),
// amax_history (amax_history_len f32, slot 0 = this step), events (2 i64:
// zero_amax, nonfinite).
class DelayedScaling {
 public:
  DelayedScaling(Fp8Format format, const DelayedScalingOptions& options);

  float scale() const { return scale_[0]; }
  float scale_inv() const { return 1.0f / scale_[0]; }
  Fp8Format format() const { return format_; }

  // This step's amax of the tensor (as fp8_amax reports it): slot 0 becomes
  // max(slot 0, amax), so micro-batches of one step can each record theirs.
  // A tensor with NaN/inf values is not recorded (counted).
  void record(const Fp8Amax& amax);
  // After the step: the new scale from the history, then the roll.
  void roll();

  const std::vector<float>& amax_history() const { return history_; }
  Fp8ScaleEvents events() const { return {events_[0], events_[1]}; }

  // Registers scale, amax_history and events as `<prefix>.fp8_scale`,
  // `<prefix>.fp8_amax_history`, `<prefix>.fp8_events` of `part`. They
  // borrow this object's memory: it must outlive the RunState (and not move).
  void add_to(RunState& state, const std::string& part, const std::string& prefix);

 private:
  Fp8Format format_;
  DelayedScalingOptions options_;
  std::vector<float> scale_;    // (1)
  std::vector<float> history_;  // (amax_history_len)
  std::vector<int64_t> events_; // (2)
};

}  // namespace lintrain
