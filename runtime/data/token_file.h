// Pre-tokenized data: a flat little-endian array of token ids, u16 or u32
// (data.token_dtype), as nanoGPT's train.bin and llm.c's shards store them.
// The file is memory-mapped, never copied.
//
// Accepted layouts:
//   raw            no header; the file size must be a multiple of the id width.
//   llm.c shard    a 1024-byte header of 256 little-endian int32 (header[0] =
//                  magic, header[1] = version, header[2] = number of tokens)
//                  followed by exactly that many ids: magic 20240520 with
//                  version 1 holds u16 ids (GPT-2), magic 20240801 with
//                  version 7 holds u32 ids (Llama 3), as written by llm.c's
//                  dev/data/data_common.py. A header's id width must agree
//                  with data.token_dtype.
// A file is taken for an llm.c shard when its first int32 is one of the two
// magics; a raw u16 file that happens to start with ids 55128, 308 (or a u32
// file starting with 20240520) would be misread, which we accept.
#pragma once

#include <memory>
#include <string>

#include "runtime/data/data_loader.h"

namespace lintrain {

constexpr int32_t kLlmcMagicU16 = 20240520;
constexpr int32_t kLlmcMagicU32 = 20240801;
constexpr int kLlmcHeaderInts = 256;

// Throws IoError for a missing/short/inconsistent file, ConfigError for a
// bad data.token_dtype, an id >= vocab_size (naming value and position) or a
// split shorter than T+1.
std::unique_ptr<DataLoader> make_token_file_loader(const DataConfig& cfg, Split split, int vocab_size, int B, int T,
                                                   uint64_t seed, int dp_rank, int dp_size);

}  // namespace lintrain
