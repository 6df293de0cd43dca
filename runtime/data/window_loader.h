// Next-token windows over a flat array of token ids: what the text (bytes) and
// tokens (.bin files) loaders share once their ids are in memory or mapped.
//
// Split: train is the first floor(n * (1 - valid_fraction)) tokens, valid the
// rest. A sequence is a window of T+1 consecutive tokens of its split:
// inputs = window[0..T), targets = window[1..T].
//   train: window start drawn uniformly from [0, n_split - T) by the
//          sequence's own Rng stream;
//   valid: window i starts at (i mod W) * T with W = (n_split - 1) / T, i.e.
//          consecutive windows that wrap around.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "runtime/data/data_loader.h"

namespace lintrain {

// A read-only array of `count` little-endian token ids of `width` bytes
// (1 = bytes, 2 = u16, 4 = u32) at `data`.
struct TokenSpan {
  const uint8_t* data = nullptr;
  uint64_t count = 0;
  int width = 1;

  uint32_t at(uint64_t i) const {
    const uint8_t* p = data + i * static_cast<uint64_t>(width);
    switch (width) {
      case 1: return p[0];
      case 2: return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8;
      default:
        return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
               static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
    }
  }
};

// Throws ConfigError naming `source`, the first id >= vocab_size, its
// position and the largest id, when any token id is out of the vocabulary.
void check_token_ids(const TokenSpan& tokens, int vocab_size, const std::string& source);

class WindowLoader : public DataLoader {
 public:
  // `owner` keeps the memory behind `tokens` alive (a MappedFile or a
  // buffer). `kind` ("text" | "tokens") and `source` (the data.path) name it
  // in messages. Throws ConfigError when the split is shorter than T+1.
  WindowLoader(const std::string& kind, uint64_t kind_id, std::string source, std::shared_ptr<const void> owner,
               TokenSpan tokens, double valid_fraction, Split split, int B, int T, uint64_t seed, int dp_rank,
               int dp_size);

  std::string name() const override;
  uint64_t split_begin() const { return begin_; }  // first token of this split in the corpus
  uint64_t split_tokens() const { return count_; }
  uint64_t distinct_sequences() const override;
  // The token count and the digest of 64 pieces of 64 KiB spread evenly over
  // the tokens (all of them up to 4 MiB): a few MiB read for corpora of any size.
  std::string fingerprint() const override;

 protected:
  void fill_sequence(uint64_t index, int32_t* inputs, int32_t* targets) const override;

 private:
  std::string kind_, source_;
  std::shared_ptr<const void> owner_;
  TokenSpan tokens_;
  uint64_t begin_ = 0, count_ = 0;
};

}  // namespace lintrain
