// Saving checkpoints without stalling training.
//
// A save has two halves, both on a background thread. First rank 0 copies
// the whole RunState into a host staging buffer (on all cores, checking that
// every float is finite) and the other ranks take the digest of their
// replicated copy. The state does not change until the next optimizer step,
// so this runs while the next step's forward and backward do: the trainer
// calls fence() just before it changes the state (the optimizer step), and
// only the part of the copy that outlasts forward + backward stalls it. Then
// the thread streams the staged files to the target (the checkpoint
// directory, or the checkpoint service), records this rank's arrival, and on
// rank 0 waits until the publisher has made the checkpoint visible.
//
// At most one save is in flight. When the next one is due while the last is
// still writing, save() waits for it and reports the wait; when the last is
// only waiting on others (a service that is away, ranks that have not
// arrived), it is abandoned instead so that training never stalls on a
// service: the newer checkpoint supersedes it.
//
// Failures of a save are reported (take_reports), the pending files are
// removed and training goes on with the previous checkpoint intact; a save
// that takes longer than checkpoint.timeout_s is abandoned the same way. The
// one fatal outcome is replicas that differ: the report says so and the
// trainer stops.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "runtime/checkpoint/manifest.h"
#include "runtime/checkpoint/run_state.h"
#include "runtime/io/safetensors.h"

namespace lintrain {

// The deadline and cancellation of one save, shared by the saver and its
// target's loops (streaming, retrying, polling).
class SaveControl {
 public:
  explicit SaveControl(double timeout_s);
  // Sleeps up to `seconds` while waiting on others (marked passive, so the
  // next save may cancel it). Returns false when cancelled or past the
  // deadline, at once.
  bool wait(double seconds);
  // `why` ends the error of the save's next check ("abandoned while ...: why").
  void cancel(const std::string& why = "the next checkpoint was due");
  bool stopped() const;  // cancelled or past the deadline
  double remaining_s() const;  // seconds to the deadline (0 when past it)
  bool cancelled() const { return cancelled_.load(); }
  bool passive() const { return passive_.load(); }
  // While it lives, cancel() calls `interrupt` (a network call's TryCancel),
  // and with passive the save counts as waiting on others, so the next save
  // cancels it instead of waiting: a call to a hung service does not hold
  // training back. Sending a file is not passive: the next save waits for it.
  class Waiting {
   public:
    Waiting(SaveControl& ctl, std::function<void()> interrupt, bool passive = true);
    ~Waiting();
    Waiting(const Waiting&) = delete;
    Waiting& operator=(const Waiting&) = delete;

   private:
    SaveControl& ctl_;
  };
  // Throws Error saying why the save stopped ("abandoned: ...", "timed out
  // after 600 s ...") when stopped(); `doing` names what it was doing.
  void check(const std::string& doing) const;

 private:
  double timeout_s_;
  double deadline_;  // steady-clock seconds
  std::atomic<bool> cancelled_{false}, passive_{false};
  std::function<void()> interrupt_;  // under mu_
  std::string why_;                  // under mu_: why it was cancelled
  mutable std::mutex mu_;
  std::condition_variable cv_;
};

struct SaveId {
  std::string job;
  int64_t step = 0;
  int64_t resumed_from = -1;  // see SaverOptions
};

// Where this rank's share of a save goes.
class CheckpointTarget {
 public:
  virtual ~CheckpointTarget() = default;
  virtual std::string describe() const = 0;
  // Streams one staged file.
  virtual FileRecord put_file(const SaveId& id, const StagedFile& file, SaveControl& ctl) = 0;
  virtual void arrive(const Arrival& arrival, SaveControl& ctl) = 0;
  // Rank 0: returns where the checkpoint was published once every rank has
  // arrived; throws Error when publishing failed or `ctl` stopped it.
  virtual std::string wait_published(const SaveId& id, SaveControl& ctl) = 0;
  // Removes this save's pending files where the target can; never throws.
  virtual void abandon(const SaveId& id) noexcept = 0;
};

// Writes straight into a checkpoint directory (checkpoint.service: none).
// Rank 0 publishes; the directory must be shared by every rank's host.
std::unique_ptr<CheckpointTarget> directory_target(const std::string& dir, int rank);

struct SaveReport {
  int64_t step = 0;
  bool ok = false;
  bool fatal = false;      // replicas differ: stop training
  bool abandoned = false;  // superseded by the next save while waiting on others
  std::string error;       // when !ok
  std::string where;       // rank 0: the published checkpoint
  uint64_t bytes = 0;      // staged bytes (rank 0)
  double stall_s = 0;      // training-thread time: save() (waiting for the previous save) + fence()
  double waited_s = 0;     // of which waiting for the previous save
  double write_s = 0;      // background time until done
};

struct SaverOptions {
  std::string job;
  int rank = 0, world_size = 1, data = 1, sequence = 1;
  bool async = true;
  double timeout_s = 600;
  int keep = 3;
  // The step of the target's checkpoint this job resumed from; -1 when it
  // started fresh or from a checkpoint elsewhere. A service refuses a save
  // that would replace another job's checkpoint unless this is at or before
  // its step (runtime/checkpoint/service/checkpoint.proto).
  int64_t resumed_from = -1;
};

class CheckpointSaver {
 public:
  CheckpointSaver(SaverOptions opts, std::unique_ptr<CheckpointTarget> target);
  // Waits for the save in flight.
  ~CheckpointSaver();
  CheckpointSaver(const CheckpointSaver&) = delete;
  CheckpointSaver& operator=(const CheckpointSaver&) = delete;

  // Saves `state` as the checkpoint of `step`; with wait (or async off)
  // returns only when the save has ended. The memory `state` points to must
  // stay unchanged until fence() returns (or the save ends). A state holding
  // a non-finite float is not saved: the report says which tensor.
  // With wait, `give_up` (polled while waiting) returning true cancels the
  // save: its report fails with "abandoned while ...: <its answer's why>".
  void save(int64_t step, const RunState& state, bool wait = false, const std::function<bool()>& give_up = {});
  // Returns once the save in flight no longer reads the live state (at once
  // when none does). Call before changing anything the saved state points to.
  void fence();
  // Allocates the staging buffer for `state` now (at start-up, on the
  // saver's thread) rather than in the first save: rank 0 holds a host copy
  // of the state's size.
  void reserve(const RunState& state);
  // Sets SaverOptions::resumed_from for the saves from now on.
  void set_resumed_from(int64_t step);
  // Blocks until no save is in flight. `give_up`, polled meanwhile, cancels
  // the save in flight when it returns true (a stop signal during the wait).
  void finish(const std::function<bool()>& give_up = {});
  // The why of a save that finish()'s give_up cancelled.
  static constexpr const char* kGiveUpWhy = "a stop signal arrived while the save was waiting";
  bool busy() const;
  // Reports of the saves that ended since the last call, oldest first.
  std::vector<SaveReport> take_reports();
  const SaverOptions& options() const { return opts_; }
  const CheckpointTarget& target() const { return *target_; }

 private:
  void run(SaveId id, SaveReport report);
  SaverOptions opts_;
  std::unique_ptr<CheckpointTarget> target_;
  RunState state_;    // the entries of the save in flight
  StagedState staged_;
  bool copying_ = false;   // the save in flight still reads the live state
  double fence_s_ = 0;     // fence() time of the save in flight
  std::thread worker_;
  std::unique_ptr<SaveControl> ctl_;
  mutable std::mutex mu_;
  std::condition_variable done_cv_;
  bool busy_ = false;
  std::vector<SaveReport> reports_;
};

}  // namespace lintrain
