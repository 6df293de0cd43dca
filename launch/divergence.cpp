#include "launch/divergence.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "runtime/error.h"

namespace lintrain {

namespace {
constexpr size_t kHistory = 20;  // finite steps kept for the trend
constexpr int kStartSteps = 5;   // finite steps that define the start
constexpr int64_t kWarnGap = 100;

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::nth_element(v.begin(), v.begin() + static_cast<long>(v.size() / 2), v.end());
  return v[v.size() / 2];
}
}  // namespace

DivergenceWatch::DivergenceWatch(const RunConfig& cfg, bool init_from, bool resumed)
    : cfg_(cfg), init_from_(init_from), resumed_(resumed) {}

std::string DivergenceWatch::observe(int64_t step, double loss, double grad_norm, double lr) {
  if (first_step_ < 0) first_step_ = step;
  last_step_ = step;
  if (!std::isfinite(loss) || !std::isfinite(grad_norm)) return "";
  ++finite_steps_;
  norms_.push_back(grad_norm);
  if (norms_.size() > kHistory) norms_.pop_front();
  if (start_n_ < kStartSteps) {
    start_sum_ += loss;
    ++start_n_;
    return "";
  }
  // "Far above": by a quarter and by at least one nat (the start of a fresh
  // run is about ln(vocab_size) nats; training only lowers it).
  const double start = start_loss();
  if (loss > start + std::max(1.0, 0.25 * start) && step - last_warned_ >= kWarnGap) {
    last_warned_ = step;
    return str_cat("lintrain: warning: step ", step, ": the loss ", loss, " is far above where this run started (",
                   start, "): training is blowing up. ", hint(loss, grad_norm, lr));
  }
  return "";
}

std::string DivergenceWatch::hint(double loss, double grad_norm, double lr) const {
  const bool bf16 = cfg_.precision.compute == "bf16";
  const std::string clip = cfg_.train.grad_clip > 0 ? "" : ", enable train.grad_clip (e.g. 1.0)";
  // A group's lr_scale multiplies the rate: name the largest when it raises it.
  double max_scale = 1.0;
  std::string scaled;
  for (const ParamGroupRule& g : cfg_.optim.groups)
    if (g.lr_scale > max_scale) {
      max_scale = g.lr_scale;
      scaled.clear();
      for (const std::string& m : g.match) scaled += (scaled.empty() ? "" : ", ") + m;
    }
  const std::string lr_text =
      max_scale > 1.0 ? str_cat("lower optim.lr (now ", lr, ") or the lr_scale ", max_scale, " of the optim.groups rule '",
                                scaled, "' (its tensors train at ", lr * max_scale, ")")
                      : str_cat("lower optim.lr (now ", lr, ")");
  // Nothing finite seen yet: the trouble is in the start, not in training.
  if (finite_steps_ == 0) {
    if (resumed_)
      return "the first step after resuming is already non-finite: the checkpoint's weights or optimizer state "
             "overflow with this run's settings (a changed optim.lr or precision?); resume with the settings it was "
             "written with";
    if (init_from_)
      return "the very first step is already non-finite: the --init-from weights overflow in this model (were they "
             "trained with other model.* settings, e.g. rms_norm_eps or rope_theta?)";
    return str_cat("the very first step is already non-finite, before any update: the initial weights overflow "
                   "(model.initializer_range is ", cfg_.model.initializer_range, "; 0.02 is usual)",
                   bf16 ? " or bf16 compute does (try precision.compute: fp32)" : "");
  }
  std::vector<double> older(norms_.begin(), norms_.end());
  const double last = older.back();
  older.pop_back();
  const double typical = median(older);
  std::string trend;
  if (older.size() >= 4 && last > 4 * typical)
    trend = str_cat("the gradient norm had been growing (median ", typical, " over the last ", older.size(),
                    " steps, then ", last, "): the updates are too large; ", lr_text, clip,
                    cfg_.schedule.warmup_steps < 100 ? str_cat(", or lengthen schedule.warmup_steps (now ",
                                                               cfg_.schedule.warmup_steps, ")")
                                                     : "");
  else if (older.size() >= 4)
    trend = str_cat("the gradient norm was steady (about ", typical, ") until now, so one batch caused it: an "
                    "outlier in the data (check the data near this step)", clip.empty() ? "" : clip.substr(1),
                    ", or ", lr_text);
  else
    trend = str_cat(lr_text, clip);
  if (!std::isfinite(loss))
    return str_cat("the loss itself is ", loss, " (the forward pass overflowed); ", trend,
                   bf16 ? "; bf16 compute overflows sooner (try precision.compute: fp32)" : "");
  return str_cat("the loss is finite (", loss, ") but the gradient norm is ", grad_norm,
                 ": a gradient overflowed in backward", bf16 ? " (bf16 compute: try precision.compute: fp32)" : "",
                 "; ", trend);
}

}  // namespace lintrain
