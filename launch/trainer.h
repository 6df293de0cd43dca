// One training run on this process: model, optimizer, data, schedule, logging,
// evaluation and weight export, driven by a RunConfig.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/config/config.h"

namespace lintrain {

struct TrainOptions {
  std::string init_from;  // a model.safetensors to start from ("" = fresh init)
  bool print = true;      // console step lines (rank 0 only in any case)
  int local_ranks = 1;    // ranks on this node: run.threads = 0 splits the cores among them
  int local_rank = 0;     // this rank's index among them: its GPU with run.device: cuda
};

// The exit code of a run stopped by SIGTERM/SIGUSR1 after saving its
// checkpoint (EX_TEMPFAIL: run the same command again to continue).
constexpr int kExitPreempted = 75;

struct TrainResult {
  std::vector<double> losses;  // per optimizer step this process ran, mean over the step's tokens
  int64_t resumed_from = -1;   // the checkpoint's step, or -1 for a fresh start
  bool complete = false;       // the checkpoint was already at train.steps: nothing ran
  int stopped_by_signal = 0;   // SIGTERM/SIGUSR1 that stopped the run early (-1: sent to another rank), else 0
  double eval_loss = 0.0;      // the final evaluation
  double eval_accuracy = 0.0;  // next-token (text) or answer (MQAR) accuracy
  double tokens_per_s = 0.0;   // over the whole run
};

class Communicator;

// Trains on the ranks of `world` (all of them run this with the same config):
// parallel.sequence x parallel.data must equal world.size(). Rank 0 prints,
// writes metrics and exports weights; every rank returns the same result.
//
// With resume: auto (the default) a run continues from the newest complete
// checkpoint in checkpoint.dir, bit-identically to a run that was never
// interrupted. Checkpoints are saved every checkpoint.every steps, at the
// end, and when SIGTERM or SIGUSR1 arrives (after the current step; the run
// then returns with stopped_by_signal set). A step whose loss or gradient
// norm is not finite is not applied; train.max_bad_steps of them in a row
// stop the run with an Error.
TrainResult train(const RunConfig& cfg, const TrainOptions& opts, Communicator& world);

}  // namespace lintrain
