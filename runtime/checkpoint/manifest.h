// The checkpoint format's records. A checkpoint is a folder
//
//   <checkpoint.dir>/step-00000100/
//     model.safetensors     master weights (F32, Hugging Face names) + metadata
//     trainer.safetensors   optimizer state, step, tokens, data position, and
//                           the resolved config and layout as metadata
//     MANIFEST.json         written last: format, version, step, layout, and
//                           every file with its size and XXH3-64 checksum
//
// and <checkpoint.dir>/latest names the newest published one. The manifest:
//
//   {"format": "lintrain-checkpoint", "version": 1, "step": 100,
//    "job": "9f2c...", "created_unix": 1764712345.25,
//    "world_size": 2, "layout": {"data": 2, "sequence": 1},
//    "files": [{"name": "model.safetensors", "bytes": 3637528,
//               "xxh3_64": "5d2b0e7c9a41f3aa"}, ...],
//    "ranks": [{"rank": 0, "replica_xxh3_64": "...", "files": ["model.safetensors", ...]},
//              {"rank": 1, "replica_xxh3_64": "...", "files": []}]}
//
// While a save is in progress its files sit in a hidden folder
// `.pending-<step>-<job>`; each rank that has written its share leaves an
// arrival record `arrival-rank-00001.json` (this struct Arrival) there, and
// the publisher (rank 0, or the checkpoint service) turns the folder into
// `step-<step>` once every rank has arrived (runtime/checkpoint/store.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lintrain {

constexpr const char* kCheckpointFormat = "lintrain-checkpoint";
constexpr int kCheckpointVersion = 1;
constexpr const char* kManifestName = "MANIFEST.json";
constexpr const char* kLatestName = "latest";

struct FileRecord {
  std::string name;  // a plain file name inside the checkpoint folder
  uint64_t bytes = 0;
  uint64_t xxh3 = 0;
};

// What a rank reports once its share of the save of `step` is written.
struct Arrival {
  std::string job;       // the run's job id (every rank of a job shares it)
  int64_t step = 0;
  int world_size = 1;
  int rank = 0;
  int data = 1, sequence = 1;  // the DP x SP layout of the job
  uint64_t replica_xxh3 = 0;   // digest of the replicated state this rank holds
  int keep = 0;                // rank 0: complete checkpoints to keep after publishing; 0 = all
  std::vector<FileRecord> files;  // the files this rank wrote
  // The step of the target's checkpoint the job resumed from, -1 when it
  // started fresh or from elsewhere: the service's replace rule
  // (checkpoint.proto). Sent to the service, not kept in the record.
  int64_t resumed_from = -1;
};

struct RankRecord {
  int rank = 0;
  uint64_t replica_xxh3 = 0;
  std::vector<std::string> files;
};

struct Manifest {
  int version = kCheckpointVersion;
  int64_t step = 0;
  std::string job;
  double created_unix = 0;
  int world_size = 1;
  int data = 1, sequence = 1;
  std::vector<FileRecord> files;
  std::vector<RankRecord> ranks;

  uint64_t bytes() const;
  const FileRecord* file(const std::string& name) const;  // or nullptr
};

std::string manifest_to_json(const Manifest& m);
// Parses and checks a manifest (format, version, field types, unique and
// valid file names, ranks 0..world_size-1 each once). Throws IoError that
// names `where` and the problem.
Manifest parse_manifest(const std::string& text, const std::string& where);

std::string arrival_to_json(const Arrival& a);
Arrival parse_arrival(const std::string& text, const std::string& where);

// "step-00000100" (at least 8 digits) and back; false for any other name.
std::string step_dir_name(int64_t step);
bool parse_step_dir_name(const std::string& name, int64_t* step);

// Names the service and the store accept for checkpoint files: 1-128
// characters of [A-Za-z0-9._-], starting with a letter or digit, not the
// manifest's name. Everything else (slashes, "..", NUL) is refused, so no
// name can leave the checkpoint folder.
bool valid_file_name(const std::string& name);
// A job id: 16 lowercase hex digits.
bool valid_job_id(const std::string& job);
// A new random job id.
std::string new_job_id();

}  // namespace lintrain
