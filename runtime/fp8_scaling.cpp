// The FP8 scaling recipes (runtime/fp8_scaling.h).
#include "runtime/fp8_scaling.h"

#include <algorithm>
#include <cfloat>
#include <cmath>

#include "runtime/checkpoint/run_state.h"
#include "runtime/error.h"

namespace lintrain {

Fp8Recipe fp8_recipe_from_name(const std::string& name) {
  if (name == "delayed") return Fp8Recipe::Delayed;
  if (name == "current") return Fp8Recipe::Current;
  if (name == "blockwise") return Fp8Recipe::Blockwise;
  throw Error(str_cat("[fp8] unknown recipe '", name, "'; valid: delayed, current, blockwise"));
}

AmaxCompute amax_compute_from_name(const std::string& name) {
  if (name == "max") return AmaxCompute::Max;
  if (name == "most_recent") return AmaxCompute::MostRecent;
  throw Error(str_cat("[fp8] unknown amax_compute '", name, "'; valid: max, most_recent"));
}

Fp8Formats fp8_formats_from_name(const std::string& name) {
  if (name == "hybrid") return {Fp8Format::E4M3, Fp8Format::E5M2};
  if (name == "e4m3") return {Fp8Format::E4M3, Fp8Format::E4M3};
  throw Error(str_cat("[fp8] unknown format '", name, "'; valid: hybrid, e4m3"));
}

float fp8_scale_from_amax(float amax, Fp8Format format, int margin) {
  LT_CHECK(std::isfinite(amax) && amax > 0.0f, "[fp8_scale_from_amax] amax must be finite and > 0, got ", amax);
  LT_CHECK(margin >= 0, "[fp8_scale_from_amax] margin must be >= 0, got ", margin);
  const double s = static_cast<double>(fp8_math::max_finite(format)) / amax / std::ldexp(1.0, margin);
  return static_cast<float>(std::min(s, static_cast<double>(FLT_MAX)));
}

float fp8_current_scale(const Fp8Amax& amax, Fp8Format format, int margin, Fp8ScaleEvents* events) {
  if (amax.nonfinite > 0 && events) ++events->nonfinite;
  if (!(amax.amax > 0.0f) || !std::isfinite(amax.amax)) {
    if (events) ++events->zero_amax;
    return 1.0f;
  }
  return fp8_scale_from_amax(amax.amax, format, margin);
}

DelayedScaling::DelayedScaling(Fp8Format format, const DelayedScalingOptions& options)
    : format_(format), options_(options), scale_(1, 1.0f), events_(2, 0) {
  LT_CHECK(options.amax_history_len >= 1, "[fp8] amax_history_len must be >= 1, got ", options.amax_history_len);
  LT_CHECK(options.margin >= 0, "[fp8] margin must be >= 0, got ", options.margin);
  history_.assign(static_cast<size_t>(options.amax_history_len), 0.0f);
}

void DelayedScaling::record(const Fp8Amax& amax) {
  if (amax.nonfinite > 0 || !std::isfinite(amax.amax)) {
    ++events_[1];
    return;
  }
  history_[0] = std::max(history_[0], amax.amax);
}

void DelayedScaling::roll() {
  const float amax = options_.amax_compute == AmaxCompute::Max ? *std::max_element(history_.begin(), history_.end())
                                                               : history_[0];
  if (amax > 0.0f) scale_[0] = fp8_scale_from_amax(amax, format_, options_.margin);
  else ++events_[0];
  std::rotate(history_.begin(), history_.begin() + 1, history_.end());
  history_[0] = 0.0f;
}

void DelayedScaling::add_to(RunState& state, const std::string& part, const std::string& prefix) {
  state.add(part, prefix + ".fp8_scale", DType::F32, {1}, scale_.data());
  state.add(part, prefix + ".fp8_amax_history", DType::F32, {static_cast<int64_t>(history_.size())},
            history_.data());
  state.add(part, prefix + ".fp8_events", DType::I64, {2}, events_.data());
}

}  // namespace lintrain
