// One training run on this process: model, optimizer, data, schedule, logging,
// evaluation and weight export, driven by a RunConfig.
#pragma once

#include <string>
#include <vector>

#include "runtime/config/config.h"

namespace lintrain {

struct TrainOptions {
  std::string init_from;  // a model.safetensors to start from ("" = fresh init)
  bool print = true;      // console step lines (rank 0)
};

struct TrainResult {
  std::vector<double> losses;  // per optimizer step, mean over the step's tokens
  double eval_loss = 0.0;      // the final evaluation
  double eval_accuracy = 0.0;  // next-token (text) or answer (MQAR) accuracy
  double tokens_per_s = 0.0;   // over the whole run
};

TrainResult train(const RunConfig& cfg, const TrainOptions& opts);

}  // namespace lintrain
