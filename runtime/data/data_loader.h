// The data loader interface and its factory.
//
// A loader hands out an endless stream of sequences; sequence i of a split is
// a pure function of (data, seed, split, i), drawn from its own random stream
// Rng::stream(stream_seed, i). That makes the loader's whole position one
// counter, so checkpoint/resume is exact, and makes sharding trivial:
//
// Data-parallel sharding rule. With dp_size ranks and a per-rank batch of B
// sequences, global batch k is the G = B * dp_size sequences with indices
// [k*G, (k+1)*G); rank r gets indices k*G + r*B + [0, B). Ranks therefore see
// disjoint rows of every global batch, and concatenating the ranks' batches
// in rank order gives exactly what a single rank with batch G would get.
// Changing dp_size while keeping G fixed does not change the data.
//
// Validation: text/token loaders read consecutive windows (wrapping at the
// end of the split) and MQAR uses a stream separate from training, so calling
// reset() before each evaluation shows every evaluation the same data.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "runtime/config/config.h"
#include "runtime/data/batch.h"
#include "runtime/rng.h"

namespace lintrain {

enum class Split { Train, Valid };
const char* split_name(Split s);  // "train" | "valid"

// A loader's exact position; plain data for checkpoints.
struct DataLoaderState {
  uint64_t sequences = 0;    // global sequences (all DP ranks) handed out so far
  uint64_t stream_seed = 0;  // the loader's random stream; restore() checks it matches
};

class DataLoader {
 public:
  virtual ~DataLoader() = default;

  // Fills `batch` (resized to B x T) with this rank's B sequences of the next
  // global batch and advances by one global batch.
  void next(Batch& batch);
  DataLoaderState state() const { return state_; }
  // Continues from a state() of a loader built with the same data kind,
  // seed and split (throws lintrain::Error otherwise). Any B/dp_size may
  // restore it; the position is counted in global sequences.
  void restore(const DataLoaderState& state);
  // Back to the first batch (before each evaluation pass).
  void reset() { state_.sequences = 0; }

  // What and where, for logs: e.g. "text 'data/shakespeare.txt' [train]".
  virtual std::string name() const = 0;
  // How many different sequences the stream holds before it repeats (the
  // validation windows of a file), or 0 when it never repeats.
  virtual uint64_t distinct_sequences() const { return 0; }
  // What the stream is made of, for comparing ranks: "N tokens, xxh3 H" for
  // file data (sampled, see WindowLoader), "" for data generated from the
  // config alone.
  virtual std::string fingerprint() const { return ""; }

  Split split() const { return split_; }
  int batch_size() const { return B_; }
  int seq_len() const { return T_; }
  int dp_rank() const { return dp_rank_; }
  int dp_size() const { return dp_size_; }

 protected:
  // kind_id separates the random streams of different data kinds.
  DataLoader(uint64_t kind_id, Split split, int B, int T, uint64_t seed, int dp_rank, int dp_size);
  // Writes global sequence `index`: inputs[0..T) and targets[0..T).
  virtual void fill_sequence(uint64_t index, int32_t* inputs, int32_t* targets) const = 0;
  // The random stream of global sequence `index` (all randomness of a sequence comes from it).
  Rng sequence_rng(uint64_t index) const { return Rng::stream(state_.stream_seed, index); }

 private:
  Split split_;
  int B_, T_, dp_rank_, dp_size_;
  DataLoaderState state_;
};

// Builds the loader for cfg.kind ("text", "tokens", "mqar" or "megatron") reading `split`.
// B is the per-rank batch, T the sequence length (normally cfg.seq_len),
// vocab_size the model's (token ids are checked against it), seed the run's
// seed, 0 <= dp_rank < dp_size the data-parallel coordinates. Throws
// ConfigError / IoError with a message naming the data.* key at fault.
std::unique_ptr<DataLoader> make_data_loader(const DataConfig& cfg, Split split, int vocab_size, int B, int T,
                                             uint64_t seed, int dp_rank = 0, int dp_size = 1);

}  // namespace lintrain
