// Learning-rate schedules. step is 0-based; total = train.steps.
//   warmup: lr * (step + 1) / warmup_steps for step < warmup_steps
//   cosine: min + (lr - min) * (1 + cos(pi * p)) / 2, p = progress after warmup in [0, 1]
//   linear: lr - (lr - min) * p;   constant: lr.   min = lr * min_lr_ratio
#pragma once

#include "runtime/config/config.h"

namespace lintrain {

double learning_rate(const ScheduleConfig& s, double base_lr, int step, int total_steps);

}  // namespace lintrain
