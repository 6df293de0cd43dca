// The checkpoint service: a gRPC server (runtime/checkpoint/service/
// checkpoint.proto) in front of one checkpoint directory. It receives the
// ranks' files in chunks, checks every size and checksum, writes through
// CheckpointStore and publishes with the store's rule, so a checkpoint it
// makes is the same as one the trainer writes itself.
//
// Safety rules, each refused with a status a client can act on:
//   - loopback addresses only, unless a token file is given: then every call
//     must carry the token (metadata "lintrain-token"), compared in constant
//     time; a missing or wrong token is UNAUTHENTICATED;
//   - file names are plain names ending in .safetensors (no '/', no "..");
//     job ids, steps, ranks and sizes are range-checked (INVALID_ARGUMENT);
//   - a message above max_chunk_bytes + 64 KiB is refused by gRPC itself
//     (RESOURCE_EXHAUSTED), a file above max_file_bytes by the header check;
//     a malformed protobuf never reaches the handlers;
//   - one writer per step: another job's save of a step that is pending and
//     active is ALREADY_EXISTS, as is a second upload of the same file;
//   - one run per history: a save of a step that holds another job's complete
//     checkpoint is ALREADY_EXISTS unless the saving job resumed from this
//     directory at or before that step (it went back; checkpoint.proto);
//   - one service per directory (the store's writer lock).
//
// Pending saves live on disk, not in memory: a service killed and restarted
// keeps every file that had arrived whole, drops half-received ones, and
// completes the save when the remaining ranks (retrying) arrive. Pending
// saves idle for longer than stale_after_s are removed.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace lintrain {

constexpr uint32_t kCheckpointProtocol = 1;
constexpr size_t kCheckpointChunkBytes = size_t{4} << 20;  // largest FileChunk/FileData payload
constexpr const char* kTokenMetadataKey = "lintrain-token";

struct ServiceOptions {
  std::string dir;                          // created when missing
  std::string listen = "127.0.0.1:7070";    // HOST:PORT; port 0 picks a free one
  std::string token_file;                   // required unless `listen` is a loopback address
  double stale_after_s = 600;
  uint64_t max_file_bytes = uint64_t{1} << 40;  // 1 TiB
};

// Whether HOST of "HOST:PORT" is a loopback address (127.0.0.0/8, ::1, localhost).
bool is_loopback_listen(const std::string& listen);
// The token in `path` (trailing whitespace removed). Throws IoError when the
// file is missing, unreadable, empty or larger than 4 KiB.
std::string read_token_file(const std::string& path);

class CheckpointService {
 public:
  // Binds and starts serving. Throws Error/IoError: address in use, a
  // non-loopback address without a token, a directory another writer holds.
  explicit CheckpointService(const ServiceOptions& opts);
  ~CheckpointService();  // shuts down (in-flight calls get a short grace)
  CheckpointService(const CheckpointService&) = delete;
  CheckpointService& operator=(const CheckpointService&) = delete;

  // The address it listens on, with the port it bound ("127.0.0.1:40123").
  const std::string& address() const;
  const std::string& dir() const;
  // Stops accepting calls and waits up to grace_s for the running ones.
  void shutdown(double grace_s = 5);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lintrain
