#include "runtime/data/window_loader.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "runtime/checkpoint/checksum.h"
#include "runtime/error.h"

namespace lintrain {

namespace {
// One pass over the ids: the largest id and the first position >= vocab
// (count when none). Templated on the width so the loop has no branch on it
// (a multi-GB token file is scanned once at startup).
template <int W>
uint64_t scan_ids(const TokenSpan& tokens, uint64_t vocab, uint32_t* max_id) {
  const TokenSpan span{tokens.data, tokens.count, W};
  uint64_t first_bad = tokens.count;
  uint32_t hi = 0;
  for (uint64_t i = 0; i < tokens.count; ++i) {
    const uint32_t id = span.at(i);
    hi = id > hi ? id : hi;
    if (id >= vocab && first_bad == tokens.count) first_bad = i;
  }
  *max_id = hi;
  return first_bad;
}
}  // namespace

void check_token_ids(const TokenSpan& tokens, int vocab_size, const std::string& source) {
  const uint64_t vocab = static_cast<uint64_t>(vocab_size);
  if (tokens.width < 4 && vocab >= (uint64_t{1} << (8 * tokens.width))) return;  // every id fits
  uint32_t max_id = 0;
  const uint64_t first_bad = tokens.width == 1   ? scan_ids<1>(tokens, vocab, &max_id)
                             : tokens.width == 2 ? scan_ids<2>(tokens, vocab, &max_id)
                                                 : scan_ids<4>(tokens, vocab, &max_id);
  if (first_bad < tokens.count) {
    throw ConfigError(str_cat("[data] token id ", tokens.at(first_bad), " at position ", first_bad, " of data.path '",
                              source, "' is >= model.vocab_size = ", vocab_size, " (the largest id is ", max_id,
                              "); raise model.vocab_size to at least ", uint64_t{max_id} + 1,
                              " or check data.token_dtype"));
  }
}

WindowLoader::WindowLoader(const std::string& kind, uint64_t kind_id, std::string source,
                           std::shared_ptr<const void> owner, TokenSpan tokens, double valid_fraction, Split split,
                           int B, int T, uint64_t seed, int dp_rank, int dp_size)
    : DataLoader(kind_id, split, B, T, seed, dp_rank, dp_size),
      kind_(kind),
      source_(std::move(source)),
      owner_(std::move(owner)),
      tokens_(tokens) {
  if (!(valid_fraction >= 0.0 && valid_fraction < 1.0)) {
    throw ConfigError(str_cat("[data] data.valid_fraction = ", valid_fraction, " must be in [0, 1)"));
  }
  const uint64_t n = tokens.count;
  const uint64_t n_train =
      std::min<uint64_t>(n, static_cast<uint64_t>(std::floor(static_cast<double>(n) * (1.0 - valid_fraction))));
  begin_ = split == Split::Train ? 0 : n_train;
  count_ = split == Split::Train ? n_train : n - n_train;
  const uint64_t need = static_cast<uint64_t>(T) + 1;
  if (count_ < need) {
    const bool train = split == Split::Train;
    throw ConfigError(str_cat(
        "[data] the ", split_name(split), " split of data.path '", source_, "' (", kind_, ") has ", count_,
        " tokens (the ", train ? "first " : "last ", 100.0 * (train ? 1.0 - valid_fraction : valid_fraction),
        "% of ", n, ") but data.seq_len = ", T, " needs at least ", need, "; ",
        train ? "lower data.seq_len or data.valid_fraction, or use more data"
              : "lower data.seq_len or raise data.valid_fraction, or use more data"));
  }
}

std::string WindowLoader::name() const {
  return str_cat(kind_, " '", source_, "' [", split_name(split()), ": ", count_, " tokens]");
}

std::string WindowLoader::fingerprint() const {
  constexpr uint64_t kPieces = 64, kPiece = 64 * 1024;
  const uint64_t bytes = tokens_.count * static_cast<uint64_t>(tokens_.width);
  std::vector<uint64_t> digests;
  if (bytes <= kPieces * kPiece) {
    digests.push_back(xxh3_of(tokens_.data, bytes));
  } else {
    for (uint64_t i = 0; i < kPieces; ++i)
      digests.push_back(xxh3_of(tokens_.data + (bytes - kPiece) / (kPieces - 1) * i, kPiece));
  }
  return str_cat(tokens_.count, " tokens, xxh3 ",
                 xxh3_hex(xxh3_of(digests.data(), digests.size() * sizeof(uint64_t))));
}

uint64_t WindowLoader::distinct_sequences() const {
  return split() == Split::Train ? 0 : (count_ - 1) / static_cast<uint64_t>(seq_len());
}

void WindowLoader::fill_sequence(uint64_t index, int32_t* inputs, int32_t* targets) const {
  const uint64_t T = static_cast<uint64_t>(seq_len());
  uint64_t start;
  if (split() == Split::Train) {
    Rng rng = sequence_rng(index);
    start = rng.below(count_ - T);
  } else {
    const uint64_t windows = (count_ - 1) / T;
    start = (index % windows) * T;
  }
  start += begin_;
  for (uint64_t t = 0; t < T; ++t) {
    inputs[t] = static_cast<int32_t>(tokens_.at(start + t));
    targets[t] = static_cast<int32_t>(tokens_.at(start + t + 1));
  }
}

}  // namespace lintrain
