// A checkpoint directory and the rule by which checkpoints appear in it.
// The trainer (checkpoint.service: none) and the checkpoint service both
// write through this class, so both publish the same way:
//
//   1. every file of a save goes into a hidden folder `.pending-<step>-<job>`,
//      each written to a temporary name, fsynced and renamed (AtomicFileWriter)
//      while its XXH3 checksum is taken;
//   2. each rank, once its share is written, leaves an arrival record there;
//   3. when all world_size ranks have arrived, the publisher checks every
//      file's size and checksum and that all ranks hold the same replicated
//      state, writes MANIFEST.json last (fsynced with the folder), renames
//      the folder to `step-<step>` and fsyncs the directory;
//   4. only then is `latest` rewritten (atomically) to name it, and old
//      checkpoints beyond checkpoint.keep are deleted: never the one `latest`
//      names, never one a reader holds (ReadLock).
//
// A crash at any point leaves either the previous state or the new complete
// checkpoint visible; a pending folder is never mistaken for a checkpoint.
// remove_stale() clears what killed writers left. One writer per directory:
// lock_for_writing() takes an flock that a second trainer or service gets
// refused.
#pragma once

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "runtime/checkpoint/checksum.h"
#include "runtime/checkpoint/manifest.h"
#include "runtime/error.h"
#include "runtime/io/atomic_file.h"

namespace lintrain {

// The ranks of a save hold different copies of state that must be
// replicated: training has silently become several models. Not published;
// the trainer stops.
class ReplicaMismatchError : public Error {
 public:
  using Error::Error;
};

// One published checkpoint folder, as listing sees it (sizes checked, not
// checksums: that is verify_checkpoint's job, runtime/checkpoint/reader.h).
struct CheckpointInfo {
  int64_t step = 0;
  std::string path;     // <dir>/step-00000100
  bool complete = false;
  std::string problem;  // why not complete ("" when complete)
  uint64_t bytes = 0;
  double created_unix = 0;
  int world_size = 0, data = 0, sequence = 0;
};

// Streams one file of a pending save to disk, hashing it on the way.
class PartWriter {
 public:
  // direct_io: see AtomicFileWriter (O_DIRECT where the file system has it).
  PartWriter(const std::string& path, uint64_t expected_bytes, bool direct_io = false);
  void write(const void* data, size_t nbytes);
  // fsync + rename into place. Throws IoError (removing the file) when the
  // bytes written are not the expected count or, if `expected_xxh3` is given,
  // their checksum differs: the part did not arrive intact.
  FileRecord finish(const uint64_t* expected_xxh3 = nullptr);
  uint64_t written() const { return hash_.bytes(); }

 private:
  std::string name_;
  uint64_t expected_;
  AtomicFileWriter out_;
  Xxh3 hash_;
};

// A shared lock on a published checkpoint while it is read: retention does
// not delete it meanwhile. Holding none is fine; listing and reading work
// without one, they just race with deletion.
class ReadLock {
 public:
  explicit ReadLock(const std::string& checkpoint_path);
  ~ReadLock();
  ReadLock(const ReadLock&) = delete;
  ReadLock& operator=(const ReadLock&) = delete;

 private:
  int fd_ = -1;
};

class CheckpointStore {
 public:
  // `dir` is created (with parents) when `create`, else it must exist.
  explicit CheckpointStore(std::string dir, bool create = false);
  ~CheckpointStore();
  CheckpointStore(const CheckpointStore&) = delete;
  CheckpointStore& operator=(const CheckpointStore&) = delete;
  const std::string& dir() const { return dir_; }

  // ---- writing -------------------------------------------------------------
  // Takes the directory's writer lock for the life of this object. Throws
  // IoError naming the holder (`who` it wrote: "pid 123 on host a") when
  // another process has it; the fix names `dir_setting`, the setting that
  // chose this directory where the caller runs ("--dir" for ckpt serve).
  void lock_for_writing(const std::string& who, const std::string& dir_setting = "checkpoint.dir");
  // Removes what killed writers left: half-deleted checkpoints, temporary
  // files, and pending saves idle for longer than max_idle_s (0: all of
  // them; a negative value keeps every pending save and removes only their
  // half-written files, which is what a restarting service wants).
  void remove_stale(double max_idle_s);

  // The folder of `job`'s save of `step`, created when absent. With
  // stale_s >= 0 it first applies the one-writer-per-step rule: another job's
  // pending save of this step that was active within stale_s seconds makes
  // this throw IoError; an older one is removed.
  std::string begin_save(const std::string& job, int64_t step, double stale_s = -1);
  std::unique_ptr<PartWriter> open_part(const std::string& job, int64_t step, const std::string& name,
                                        uint64_t bytes, bool direct_io = false);
  void record_arrival(const Arrival& a);
  std::vector<Arrival> arrivals(const std::string& job, int64_t step) const;
  // Publishes the pending save once every rank has arrived (steps 3 and 4
  // above); returns false while ranks are missing. Files named in `trusted`
  // were hashed as this process wrote them and are only size-checked; the
  // rest are re-read and hashed. Throws IoError (bad or missing file, ranks
  // that disagree on the world size) or Error (replicas that differ), leaving
  // the pending folder for abandon().
  bool try_publish(const std::string& job, int64_t step, const std::set<std::string>& trusted = {});
  // Whether `job`'s save of `step` is pending here.
  bool pending(const std::string& job, int64_t step) const;
  void abandon(const std::string& job, int64_t step);
  // Deletes complete checkpoints older than the newest `keep` (keep >= 1),
  // except the one `latest` names and any held by a ReadLock.
  void apply_retention(int keep);

  // ---- reading -------------------------------------------------------------
  // Published checkpoint folders in ascending step order.
  std::vector<CheckpointInfo> list() const;
  // The folder name `latest` holds, or "" when there is none.
  std::string latest() const;
  // Why the `latest` file, when there is one, names no checkpoint: "" when it
  // is absent or holds a step-NNNNNNNN name, else what it holds (shortened).
  std::string latest_problem() const;
  // The job whose manifest the complete checkpoint of `step` carries, or ""
  // when there is no complete checkpoint of `step`.
  std::string published_job(int64_t step) const;
  std::string path_of(int64_t step) const;

 private:
  std::string pending_path(const std::string& job, int64_t step) const;
  std::string dir_;
  int lock_fd_ = -1;
};

// Reads a checkpoint folder's manifest and checks that every file it lists
// exists with its size; `info.problem` says what is wrong otherwise.
CheckpointInfo inspect_checkpoint(const std::string& path);

// The checkpoint folder (…/step-<N> with a manifest) or checkpoint
// directory (one a writer has locked, or whose `latest` names a checkpoint
// in it) that `path` is or lies inside, or "" when there is none: writing
// there (`ckpt export --out`) would change or hide a checkpoint's files.
std::string checkpoint_area_of(const std::string& path);

// Small-file helpers shared by the checkpoint code.
std::string read_small_file(const std::string& path, size_t max_bytes = 1 << 20);
void fsync_directory(const std::string& path);
void remove_tree(const std::string& path);  // rm -rf; never throws

}  // namespace lintrain
