// What the trainer does for precision.fp8 around the model's FP8 layers: the
// model options from the config (recipe, the tensors the globs pick, the amax
// reduction over every rank), and each step's counts for metrics.jsonl, the
// console and TensorBoard.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "layers/model.h"
#include "runtime/config/config.h"

namespace lintrain {

class Communicator;

// precision.fp8 for the model. `world` (borrowed) reduces the amaxes; null
// (the planner) leaves the reduction out.
Fp8ModelOptions fp8_model_options(const Fp8Config& c, Communicator* world);

// The step's FP8 counts summed over the ranks, appended to `row` as
// metrics.jsonl columns, and into `warning` the console warning when a
// class's saturated fraction passes warn_saturated.
void report_fp8_counts(LinearLlama& model, Communicator& world, double warn_saturated, int step,
                       std::vector<std::pair<std::string, double>>* row, std::string* warning);

// The console line of a step's FP8 counts (the fp8_* columns of `row`).
std::string fp8_summary(const std::vector<std::pair<std::string, double>>& row);

}  // namespace lintrain
