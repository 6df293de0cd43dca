#include "optim/schedule.h"

#include <algorithm>
#include <cmath>

namespace lintrain {

double learning_rate(const ScheduleConfig& s, double base_lr, int step, int total_steps) {
  if (step < s.warmup_steps) return base_lr * (step + 1) / s.warmup_steps;
  if (s.kind == "constant") return base_lr;
  const double min_lr = base_lr * s.min_lr_ratio;
  const int span = std::max(1, total_steps - s.warmup_steps - 1);
  const double p = std::min(1.0, static_cast<double>(step - s.warmup_steps) / span);
  if (s.kind == "linear") return base_lr - (base_lr - min_lr) * p;
  return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + std::cos(M_PI * p));
}

}  // namespace lintrain
