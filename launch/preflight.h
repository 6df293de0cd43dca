// What a run checks before it allocates or trains, so that a run that cannot
// be right stops at once with the reason instead of crashing, hanging or
// training silently wrong:
//   - every rank runs the same run (the resolved config and the --init-from
//     file, compared by digest with rank 0's; the differing keys are named);
//   - the replicas hold identical weights once initialised or loaded;
//   - the threads asked for are not far above the cores;
//   - the run's memory fits this machine (an estimate from the config,
//     before any allocation, naming the keys that drive it).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "parallel/communicator.h"
#include "runtime/config/config.h"
#include "runtime/param_table.h"

namespace lintrain {

class DataLoader;
class FileLock;

// Collective over `world`, before anything else that depends on the config.
// Throws ConfigError on every rank when any rank's resolved config (or its
// --init-from file's contents) differs from rank 0's, naming the first such
// rank and the keys with both values.
void check_ranks_agree(const RunConfig& cfg, const std::string& init_from, Communicator& world);

// Collective: the training data every rank loaded must be the same (one path
// may name different files on different nodes). Throws ConfigError on every
// rank naming the data (`source`: "data.path 'x'" or "data.blend") and both
// fingerprints (DataLoader::fingerprint).
void check_data_agrees(const DataLoader& train, const std::string& source, Communicator& world);

// Collective over `world`: the parameters are replicated on every rank (SP and
// DP both hold whole copies), so their digests must all be equal. Throws Error
// naming the ranks whose weights differ from rank 0's and `when`.
void check_replicas_equal(const FlatBuffer& params, Communicator& world, const std::string& when);

// Per-rank bytes of a run, from the config alone (nothing is allocated).
struct RunMemory {
  // activations: what forward saves for backward, the backward workspaces and
  // the step's loaded micro-batches.
  double weights = 0, grads = 0, compute_copy = 0, optimizer = 0, activations = 0, staging = 0;
  double total() const { return weights + grads + compute_copy + optimizer + activations + staging; }
};
RunMemory estimate_run_memory(const RunConfig& cfg, int sp_size);

// Bytes this process may still allocate: the least of MemAvailable, the
// cgroup's limit less its usage, and RLIMIT_AS / RLIMIT_DATA less what is
// mapped; `source` says which bound it is. Negative when none is known.
double available_memory_bytes(std::string* source);

// Throws ConfigError when the estimate for one rank, times the ranks sharing
// this node, is above what the node has; names the estimate by part, the
// keys that size it and the fixes.
void check_memory_fits(const RunConfig& cfg, int sp_size, int local_ranks);

// Threads per rank: run.threads, else OMP_NUM_THREADS, else the node's cores
// shared among the ranks on it. Throws ConfigError when the count asked for
// is far above the cores (OpenBLAS and OpenMP then thrash or hang).
int threads_per_rank(const RunConfig& cfg, int local_ranks);

// Rank 0 takes run.out_dir: creates it (saying why it cannot), locks it for
// the run's life (released however the process ends) and checks that the
// files the run writes at its end can be written there. Throws IoError.
std::unique_ptr<FileLock> claim_out_dir(const std::string& dir);

// Refuses (ConfigError) a train.eval_batches above what the validation split
// holds (each window seen once), naming the largest value that fits.
void check_eval_batches(const RunConfig& cfg, const DataLoader& valid);

// $TMPDIR (or /tmp when unset) is an existing, writable directory. Open MPI
// puts its session directory there and, when it cannot, aborts MPI_Init with
// its own text and no word of TMPDIR; called before MPI starts. Throws Error.
void check_tmpdir();

// The file-size limit (ulimit -f, RLIMIT_FSIZE) is at least kMinFileSizeLimit:
// Open MPI's shared-memory segment (4 MiB + 8 bytes per rank, in /dev/shm)
// fails to grow under a smaller one and MPI_Init_thread aborts in PMIx's
// words (measured: 4000 blocks of 1 KiB abort, 4500 start). Called before
// MPI starts; throws Error naming ulimit -f, its value and the fix. A limit
// above this but below a checkpoint's size fails that save with a warning.
constexpr uint64_t kMinFileSizeLimit = uint64_t{5} << 20;  // the segment and 1 MiB to spare
void check_file_size_limit();

}  // namespace lintrain
