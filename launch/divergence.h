// Watching a run's loss and gradient norm for trouble, and saying what it
// most likely is from what was seen: the first step already bad (the start),
// a gradient norm that had been growing (the learning rate), one sudden
// spike from a steady norm (one batch), a gradient overflow with a finite
// loss (backward; bf16), or a finite loss far above where the run started.
#pragma once

#include <cstdint>
#include <deque>
#include <string>

#include "runtime/config/config.h"

namespace lintrain {

class DivergenceWatch {
 public:
  explicit DivergenceWatch(const RunConfig& cfg, bool init_from = false, bool resumed = false);

  // Records one step (1-based `step`); returns a warning to print when a
  // finite loss has climbed far above the run's start (at most one per 100
  // steps), else "".
  std::string observe(int64_t step, double loss, double grad_norm, double lr);
  // Why the step just observed was non-finite, with the fixes to try.
  std::string hint(double loss, double grad_norm, double lr) const;

  // The reference a blow-up is measured against: the mean loss of the first
  // finite steps this process saw.
  double start_loss() const { return start_n_ ? start_sum_ / start_n_ : 0; }

 private:
  RunConfig cfg_;  // a copy: callers pass temporaries
  bool init_from_, resumed_;
  std::deque<double> norms_;  // the last finite gradient norms
  int64_t finite_steps_ = 0, last_warned_ = -1000000;
  int64_t first_step_ = -1, last_step_ = 0;
  double start_sum_ = 0;
  int start_n_ = 0;
};

}  // namespace lintrain
