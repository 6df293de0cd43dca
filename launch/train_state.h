// What a checkpoint of a training run holds, bound to the live objects of
// the run, and what a resume may change.
//
//   model.safetensors   every parameter, F32, under its Hugging Face name;
//                       metadata: format, producer, layer_pattern
//   trainer.safetensors optimizer/<group>/<tensor>  F32 optimizer state
//                       optimizer/<word>            U64 step counters, RNG words
//                       train/step, train/tokens_seen, train/bad_steps_in_row,
//                       train/bad_steps_total       I64
//                       data/train/sequences, data/train/stream_seed  U64
//                       fp8/<tensor>.{weight,input,grad}.fp8_{scale,amax_history,events}
//                                   the delayed FP8 recipe's state (FP8 runs only)
//                       metadata: format, the resolved run file ("config"),
//                       the DP x SP layout, the optimizer's name
//
// The learning-rate schedule is a function of train/step, so the step is its
// position. Validation loaders restart at every evaluation and the model has
// no random state of its own, so nothing else varies between steps.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/checkpoint/reader.h"
#include "runtime/checkpoint/run_state.h"
#include "runtime/config/config.h"
#include "runtime/data/data_loader.h"

namespace lintrain {

class LinearLlama;
class Optimizer;
class ProcessGrid;

struct TrainCounters {
  int64_t step = 0;              // optimizer steps done: the schedule's position
  int64_t tokens_seen = 0;       // training tokens over all ranks
  int64_t bad_steps_in_row = 0;  // latest steps whose update was skipped (non-finite)
  int64_t bad_steps_total = 0;
};

class TrainState {
 public:
  // The objects are borrowed and must outlive this.
  TrainState(const RunConfig& cfg, const ProcessGrid& grid, LinearLlama& model, Optimizer& optimizer,
             DataLoader& train_data);

  TrainCounters counters;

  // The whole state as of now, for a save (the loader's position copied in).
  const RunState& snapshot();

  // Continues from `ckpt`: checks its run file against this run's
  // (check_resume_changes), restores every entry and hands the data position
  // back to the loader. Returns the notes for the log about what changed.
  std::vector<std::string> restore(const OpenedCheckpoint& ckpt);

 private:
  // with_fp8: the FP8 scaling state is part of it (false only while restoring
  // a checkpoint written without it).
  void bind(bool with_fp8 = true);
  const RunConfig& cfg_;
  const ProcessGrid& grid_;
  LinearLlama& model_;
  Optimizer& optimizer_;
  DataLoader& train_data_;
  DataLoaderState data_;
  RunState state_;
};

// What may differ between the run that wrote a checkpoint (its resolved run
// file) and the run resuming it. Throws ConfigError listing every change
// that cannot be honoured (model.*, optim.name, optim.groups, run.seed,
// data.kind) with the fix; returns one note per other change that alters
// the continuation (learning rate, steps, data path, layout, ...). Settings
// that only say how the run is watched or saved (logging, evaluation,
// export, checkpoint.*, threads, names) pass without a note.
std::vector<std::string> check_resume_changes(const std::string& saved_yaml, const RunConfig& now,
                                              const std::string& where);

}  // namespace lintrain
