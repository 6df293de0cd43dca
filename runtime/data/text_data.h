// Byte-level text: token id = byte value (0..255), no tokenizer to train or
// ship. data.path is a file, or a directory whose regular files (sorted by
// name, dot-files skipped) are concatenated with one '\n' between them.
#pragma once

#include <memory>
#include <string>

#include "runtime/data/data_loader.h"

namespace lintrain {

// Throws IoError when data.path is missing, unreadable or holds no bytes,
// ConfigError when a split is too short for T (see window_loader.h) or a byte
// is >= vocab_size.
std::unique_ptr<DataLoader> make_text_loader(const DataConfig& cfg, Split split, int vocab_size, int B, int T,
                                             uint64_t seed, int dp_rank, int dp_size);

}  // namespace lintrain
