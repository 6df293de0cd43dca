// One training run on this process: model, optimizer, data, schedule, logging,
// evaluation and weight export, driven by a RunConfig.
#pragma once

#include <string>
#include <vector>

#include "runtime/config/config.h"

namespace lintrain {

struct TrainOptions {
  std::string init_from;  // a model.safetensors to start from ("" = fresh init)
  bool print = true;      // console step lines (rank 0 only in any case)
  int local_ranks = 1;    // ranks on this node: run.threads = 0 splits the cores among them
};

struct TrainResult {
  std::vector<double> losses;  // per optimizer step, mean over the step's tokens
  double eval_loss = 0.0;      // the final evaluation
  double eval_accuracy = 0.0;  // next-token (text) or answer (MQAR) accuracy
  double tokens_per_s = 0.0;   // over the whole run
};

class Communicator;

// Trains on the ranks of `world` (all of them run this with the same config):
// parallel.sequence x parallel.data must equal world.size(). Rank 0 prints,
// writes metrics and exports weights; every rank returns the same result.
TrainResult train(const RunConfig& cfg, const TrainOptions& opts, Communicator& world);

}  // namespace lintrain
