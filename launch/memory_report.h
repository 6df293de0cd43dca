// Optimizer-state memory, computed from parameter tables and state layouts
// without allocating a model: `lintrain memory RUN.yaml` for a run's model,
// and `lintrain memory --table` for the README's comparison on the LLaMA
// shapes of the GaLore paper (60M, 130M, 350M, 1B).
#pragma once

#include <string>

#include "runtime/config/config.h"

namespace lintrain {

// The run's parameter groups and optimizer state (as printed at startup).
std::string run_memory_report(const RunConfig& cfg);

// Plans the run's optimizer on its model's parameter table without
// allocating anything, throwing what the trainer's optimizer would (a GaLore
// rank above a matrix's smaller side, a group rule that takes no tensor), so
// `lintrain config` refuses what `train` refuses.
void check_optimizer_plan(const RunConfig& cfg);

// The README's Markdown table: optimizer state of every optimizer at its
// paper settings on the four LLaMA shapes, with bytes per parameter and the
// fraction of AdamW's state.
std::string optimizer_memory_table();

}  // namespace lintrain
