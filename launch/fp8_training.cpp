#include "launch/fp8_training.h"

#include <algorithm>

#include "optim/param_groups.h"
#include "parallel/communicator.h"
#include "runtime/error.h"
#include "runtime/fp8_scaling.h"

namespace lintrain {

// precision.fp8 for the model: the recipe, the tensors the globs pick, and the
// amax reduction over every rank (all of them hold the same weights): one
// all_gather of the amax vector, then the max (the communicator has no max).
Fp8ModelOptions fp8_model_options(const Fp8Config& c, Communicator* world) {
  Fp8ModelOptions o;
  o.settings.recipe = fp8_recipe_from_name(c.recipe);
  o.settings.formats = fp8_formats_from_name(c.format);
  o.settings.delayed.amax_history_len = c.amax_history_len;
  o.settings.delayed.amax_compute = amax_compute_from_name(c.amax_compute);
  o.settings.delayed.margin = c.margin;
  o.selected = [include = c.include, exclude = c.exclude](const std::string& name) {
    const auto any = [&](const std::vector<std::string>& globs) {
      return std::any_of(globs.begin(), globs.end(), [&](const std::string& g) { return glob_match(g, name); });
    };
    return any(include) && !any(exclude);
  };
  if (world && world->size() > 1)
    o.reduce = [&world = *world](float* amax, int n) {
      std::vector<float> all(static_cast<size_t>(n) * world.size());
      world.all_gather(amax, all.data(), static_cast<size_t>(n));
      for (int r = 0; r < world.size(); ++r)
        for (int i = 0; i < n; ++i) amax[i] = std::max(amax[i], all[static_cast<size_t>(r) * n + i]);
    };
  return o;
}

// The step's FP8 counts summed over the ranks, as metrics.jsonl columns, and
// the console warning when a class's saturated fraction passes the threshold.
void report_fp8_counts(LinearLlama& model, Communicator& world, double warn_saturated, int step,
                       std::vector<std::pair<std::string, double>>* row, std::string* warning) {
  const Fp8StepCounts c = model.take_fp8_counts();
  double v[3 * kFp8Classes];
  for (int k = 0; k < kFp8Classes; ++k) {
    v[3 * k] = static_cast<double>(c.by_class[k].saturated);
    v[3 * k + 1] = static_cast<double>(c.by_class[k].flushed);
    v[3 * k + 2] = static_cast<double>(c.quantised[k]);
  }
  world.all_reduce_f64(v, 3 * kFp8Classes);
  static const char* const kNames[kFp8Classes] = {"weights", "activations", "gradients"};
  for (int k = 0; k < kFp8Classes; ++k) {
    row->emplace_back(str_cat("fp8_saturated_", kNames[k]), v[3 * k]);
    row->emplace_back(str_cat("fp8_flushed_", kNames[k]), v[3 * k + 1]);
    const double frac = v[3 * k + 2] > 0 ? v[3 * k] / v[3 * k + 2] : 0.0;
    if (frac > warn_saturated)
      *warning += str_cat("lintrain: warning: step ", step, ": ", v[3 * k], " FP8 ", kNames[k], " values (",
                          frac * 100.0, "%) saturated (precision.fp8.warn_saturated = ", warn_saturated,
                          "); raise precision.fp8.margin, or use the current or blockwise recipe\n");
  }
}

// The console line of a step's FP8 counts.
std::string fp8_summary(const std::vector<std::pair<std::string, double>>& row) {
  std::string sat, flushed;
  for (const auto& [k, v] : row) {
    if (k.rfind("fp8_saturated_", 0) == 0) sat += str_cat(sat.empty() ? "" : "/", static_cast<long long>(v));
    if (k.rfind("fp8_flushed_", 0) == 0) flushed += str_cat(flushed.empty() ? "" : "/", static_cast<long long>(v));
  }
  return str_cat("          fp8 saturated w/a/g ", sat, ", flushed to zero w/a/g ", flushed, "\n");
}

}  // namespace lintrain
