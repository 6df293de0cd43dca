// data.kind megatron: next-token windows over Megatron indexed datasets
// (megatron_dataset.h), one prefix (data.path) or a weighted blend of several
// (data.blend), with document boundaries kept.
//
// Documents. Each dataset's split is the concatenation of its documents with
// data.eod_token after each one (data.add_eod; false for files whose
// documents already end in an EOD, as Megatron's preprocess_data.py
// --append-eod writes them). A window may cross an EOD, as in Megatron's GPT
// dataset: the model learns where documents end.
//
// Split by documents: of a dataset's D documents the last
// ceil(D * valid_fraction) (at least 1, and at least 1 left to train on) are
// the validation split, so no document is cut between the two.
//
// Sequences. A sequence is a window of T+1 consecutive tokens of a split
// stream of length L (inputs = window[0..T), targets = window[1..T]):
//   train: start drawn uniformly from [0, L - T) by the sequence's own Rng
//          stream (the one of its global index);
//   valid: the j-th sequence a dataset serves starts at (j mod W) * T,
//          W = (L - 1) / T.
//
// Blending. Which dataset serves global sequence i is a pure function of i:
// a period of kBlendPeriod sequences holds n_k = the weight's share of it
// (largest-remainder rounding, every dataset at least one), interleaved by
// Megatron's greedy rule (each slot goes to the dataset furthest below its
// target count so far); the table repeats. Dataset k's j-th sequence is then
// j = (i / period) * n_k + (slots of k before i % period), also O(1). The
// loader's position stays one counter, so resume and DP sharding are those of
// every loader (data_loader.h).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "runtime/data/data_loader.h"

namespace lintrain {

constexpr int kBlendPeriod = 4096;

struct BlendPart {
  double weight = 1.0;  // as given; the loader normalises
  std::string prefix;   // <prefix>.bin / <prefix>.idx
  std::string what;     // "data.path" or "data.blend[3]", for messages
};

// The datasets of cfg: data.path alone (weight 1), or data.blend, Megatron's
// flat form [w0, prefix0, w1, prefix1, ...] (the --data-path list of
// Megatron-LM, so a blend copies over). Throws ConfigError naming the entry
// at fault: an odd length, a weight that is not a positive number, an empty
// prefix, both or neither of data.path and data.blend.
std::vector<BlendPart> megatron_blend(const DataConfig& cfg);

// For each slot of one period, the dataset that serves it (see above).
std::vector<int> blend_schedule(const std::vector<double>& weights, int period = kBlendPeriod);

// The EOD id of cfg: data.eod_token, or vocab_size - 1 when it is -1.
int megatron_eod_token(const DataConfig& cfg, int vocab_size);

// Throws IoError/ConfigError from MegatronDataset::open, ConfigError for an
// EOD outside the vocabulary, too few documents to split, or a split shorter
// than T+1 tokens.
std::unique_ptr<DataLoader> make_megatron_loader(const DataConfig& cfg, Split split, int vocab_size, int B, int T,
                                                 uint64_t seed, int dp_rank, int dp_size);

}  // namespace lintrain
