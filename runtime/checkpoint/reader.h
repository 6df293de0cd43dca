// Reading checkpoints back, with every byte verified: from a checkpoint
// directory, or through the checkpoint service (runtime/checkpoint/service/).
//
// open_checkpoint() reads the manifest (format and version checked), then
// every file it lists, checking size and XXH3 checksum and parsing it as
// safetensors; restore_run_state() copies the parts into a RunState after
// checking that the two hold exactly the same entries. open_newest() is what
// `resume: auto` does: the newest complete checkpoint that verifies, and
// when one does not, a warning naming the bad file and the next older one.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/checkpoint/manifest.h"
#include "runtime/checkpoint/run_state.h"
#include "runtime/checkpoint/store.h"
#include "runtime/io/safetensors.h"

namespace lintrain {

class CheckpointSource {
 public:
  virtual ~CheckpointSource() = default;
  // "runs/tiny/checkpoints", "checkpoint service 127.0.0.1:7070", for messages.
  virtual std::string describe() const = 0;
  // Published checkpoints in ascending step order.
  virtual std::vector<CheckpointInfo> list() = 0;
  // "runs/tiny/checkpoints/step-00000100" or "service:step-00000100".
  virtual std::string where(int64_t step) const = 0;
  virtual std::string read_manifest(int64_t step) = 0;
  // The file `record` names, checked against its size and checksum (IoError
  // naming the file and what differs otherwise) and parsed.
  virtual SafeTensorFile open_verified(int64_t step, const FileRecord& record) = 0;
  // Keeps the checkpoint from being deleted by retention while the result
  // lives (null where the source cannot).
  virtual std::shared_ptr<void> hold(int64_t step) = 0;
  // The step `latest` names, or -1 where the source has no such pointer.
  virtual int64_t latest_step() { return -1; }
  // Why the source's `latest` pointer names no checkpoint ("" when it is
  // absent or names one), for the warning that it is ignored.
  virtual std::string latest_problem() { return ""; }
};

std::unique_ptr<CheckpointSource> directory_source(const std::string& dir);

struct OpenedCheckpoint {
  Manifest manifest;
  std::string where;
  std::map<std::string, SafeTensorFile> parts;  // by part name: "model" for model.safetensors
  std::shared_ptr<void> hold;

  // A part's file; throws IoError naming the checkpoint when it has none.
  const SafeTensorFile& part(const std::string& name) const;
};

// Opens checkpoint `step` of `source`, verifying everything. Throws IoError.
OpenedCheckpoint open_checkpoint(CheckpointSource& source, int64_t step);

// The source holds checkpoints but not one of them opens: `problems` has one
// line per checkpoint ("<where>: <what is wrong>"), newest first.
class NoUsableCheckpointError : public IoError {
 public:
  NoUsableCheckpointError(const std::string& what, std::vector<std::string> problems)
      : IoError(what), problems_(std::move(problems)) {}
  const std::vector<std::string>& problems() const { return problems_; }

 private:
  std::vector<std::string> problems_;
};

// The newest complete checkpoint that opens, or nothing when the source
// holds no checkpoint at all. Each damaged one newer than it is reported
// through `warn` ("... step-00000200: file 'trainer.safetensors' checksum
// ...; using step-00000100") and skipped. When there are checkpoints but none
// opens, throws NoUsableCheckpointError naming each and what is wrong with
// it: starting fresh would silently overwrite them. A checkpoint newer than
// the one `latest` names that another job wrote (a run that went back with
// resume: PATH) is another history: skipped with a warning naming it.
std::optional<OpenedCheckpoint> open_newest(CheckpointSource& source,
                                            const std::function<void(const std::string&)>& warn);

// The checkpoint's tensors are not the state's: `differences` says how, by
// kind, with the first few names of each ("34 missing from the checkpoint
// (trainer tensor 'a', ... and 31 more); ...").
class StateMismatchError : public IoError {
 public:
  StateMismatchError(const std::string& what, std::string differences)
      : IoError(what), differences_(std::move(differences)) {}
  const std::string& differences() const { return differences_; }

 private:
  std::string differences_;
};

// A user-given path (resume: PATH, `lintrain ckpt verify/export PATH`): a
// checkpoint folder (…/step-00000100) or a checkpoint directory, which means
// its newest complete checkpoint. Throws IoError saying what the path is not.
OpenedCheckpoint open_checkpoint_path(const std::string& path,
                                      const std::function<void(const std::string&)>& warn);

// Copies the checkpoint's tensors into `state`'s live memory. First checks,
// for the parts `state` has, that every entry is in the checkpoint with the
// same dtype and shape and that the checkpoint's part holds no tensor the
// state lacks; on any difference throws StateMismatchError listing them (by
// kind, the first few of each) and changes nothing. Parts the state does not have are
// not read (`ckpt export` restores the model part alone).
void restore_run_state(const OpenedCheckpoint& ckpt, RunState& state);

}  // namespace lintrain
