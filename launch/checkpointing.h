// The trainer's side of checkpoints: where this run's saves go and its
// resume comes from (checkpoint.dir, or a checkpoint service), the
// asynchronous saver, and what the log says about both.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "launch/train_state.h"
#include "runtime/checkpoint/reader.h"
#include "runtime/checkpoint/saver.h"
#include "runtime/checkpoint/service/client.h"
#include "runtime/checkpoint/store.h"
#include "runtime/config/config.h"

namespace lintrain {

class MetricsLog;
class ProcessGrid;

// Where `lintrain launch` tells its ranks the address of the service it
// started for checkpoint.service: local.
constexpr const char* kServiceEnv = "LINTRAIN_CKPT_SERVICE";

class RunCheckpoints {
 public:
  // Collective over the grid's world: rank 0 draws the job id and shares it.
  // Rank 0 takes the checkpoint directory's writer lock and clears what
  // killed writers left there, before any rank can start a save. With a
  // service and resume: auto, rank 0 waits for the service to answer (saying
  // so) up to checkpoint.timeout_s, and throws Error within about 10 s when
  // nothing listens on its port; other resume settings only warn.
  RunCheckpoints(const RunConfig& cfg, const ProcessGrid& grid);
  ~RunCheckpoints();

  const std::string& job() const { return job_; }
  // "runs/tiny/checkpoints" or "checkpoint service 127.0.0.1:7070".
  std::string describe() const;

  // Collective. Applies cfg.resume: rank 0 picks the checkpoint (the newest
  // complete one that verifies, for auto; warnings name what it skipped),
  // every rank opens that one and restores `state` from it. Returns the step
  // resumed from, or -1 when the run starts fresh. `notes` gets what the log
  // should say (the checkpoint used, settings that changed). For auto, a
  // directory (or service) that holds checkpoints of which none verifies
  // throws IoError naming each and the fixes: starting over would replace them.
  int64_t resume(TrainState& state, std::vector<std::string>& notes);

  // Whether a checkpoint is due after `step` (1-based) of `total`.
  bool due(int64_t step, int64_t total) const;
  // When checkpoints are periodic, allocates the saver's staging buffer for
  // `state` (rank 0), so the first save costs what every other does.
  void reserve(const RunState& state);
  // Starts the save of `state` as of `step`; wait = finish it before
  // returning. With stop_cuts_wait (the final save of a finished run, which
  // may wait up to checkpoint.timeout_s on a service), a stop signal that
  // arrives meanwhile abandons the save: cut_by_signal() then says so.
  void save(int64_t step, const RunState& state, bool wait, bool stop_cuts_wait = false);
  bool cut_by_signal() const { return cut_by_signal_; }
  // Returns once the save in flight has its copy of the state: call before
  // the optimizer step (or anything else) changes it.
  void fence();
  // Waits for the save in flight.
  void finish();

  // Reports the saves that ended: rank 0 prints them and adds a
  // {"kind": "checkpoint"} record per save to the metrics; failures print on
  // any rank. Throws Error when a save found the replicas diverged. Returns
  // whether every reported save succeeded.
  bool report(MetricsLog* log, bool print);
  // The last save's outcome (for the final and the preemption checkpoint).
  bool last_ok() const { return last_ok_; }
  const std::string& last_where() const { return last_where_; }
  const std::string& last_error() const { return last_error_; }

 private:
  bool uses_service() const { return !endpoint_.address.empty(); }
  bool in_service_dir(const std::string& checkpoint_path) const;
  // Where published checkpoints are read from (null: no directory yet).
  std::unique_ptr<CheckpointSource> source() const;

  const RunConfig& cfg_;
  const ProcessGrid& grid_;
  std::string job_;
  std::string dir_;            // checkpoint.dir (file mode)
  ServiceEndpoint endpoint_;   // the service (service modes)
  std::string service_dir_;    // its directory, as it said
  std::string startup_warning_;
  std::unique_ptr<CheckpointStore> lock_;  // rank 0: the writer lock
  std::unique_ptr<CheckpointSaver> saver_;
  bool last_ok_ = true;
  bool cut_by_signal_ = false;
  std::string last_where_, last_error_;
};

}  // namespace lintrain
