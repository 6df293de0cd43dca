#include "runtime/data/token_file.h"

#include <algorithm>
#include <filesystem>

#include "runtime/data/window_loader.h"
#include "runtime/error.h"
#include "runtime/io/mapped_file.h"

namespace lintrain {

namespace {

constexpr uint64_t kTokensKindId = 1;

int32_t read_i32(const uint8_t* p) {
  return static_cast<int32_t>(static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
                              static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24);
}

// The ids of `file`, after its llm.c header if it has one.
TokenSpan token_span(const MappedFile& file, int width, const std::string& dtype) {
  const std::string& path = file.path();
  const uint64_t header_bytes = 4 * kLlmcHeaderInts;
  const int32_t magic = file.size() >= 4 ? read_i32(file.data()) : 0;
  if (magic == kLlmcMagicU16 || magic == kLlmcMagicU32) {
    const int header_width = magic == kLlmcMagicU16 ? 2 : 4;
    const int32_t want_version = magic == kLlmcMagicU16 ? 1 : 7;
    if (file.size() < header_bytes) {
      throw IoError(str_cat("[data] data.path '", path, "' starts with the llm.c magic ", magic, " but is only ",
                            file.size(), " bytes, shorter than the ", header_bytes, "-byte header"));
    }
    const int32_t version = read_i32(file.data() + 4);
    const int32_t ntok = read_i32(file.data() + 8);
    if (version != want_version) {
      throw IoError(str_cat("[data] data.path '", path, "': llm.c header with magic ", magic, " has version ",
                            version, ", expected ", want_version));
    }
    if (header_width != width) {
      throw ConfigError(str_cat("[data] data.path '", path, "' is an llm.c shard of ", header_width == 2 ? "u16" : "u32",
                                " ids but data.token_dtype = ", dtype, "; set data.token_dtype to ",
                                header_width == 2 ? "u16" : "u32"));
    }
    const uint64_t body = file.size() - header_bytes;
    if (ntok < 0 || body != static_cast<uint64_t>(ntok) * static_cast<uint64_t>(width)) {
      throw IoError(str_cat("[data] data.path '", path, "': llm.c header says ", ntok, " tokens (", int64_t{ntok} * width,
                            " bytes) but ", body, " bytes follow the header (truncated or corrupt file)"));
    }
    return TokenSpan{file.data() + header_bytes, static_cast<uint64_t>(ntok), width};
  }
  if (file.size() % static_cast<uint64_t>(width) != 0) {
    throw IoError(str_cat("[data] data.path '", path, "' is ", file.size(), " bytes, not a whole number of ", dtype,
                          " token ids (", width, " bytes each); is data.token_dtype right?"));
  }
  return TokenSpan{file.data(), file.size() / static_cast<uint64_t>(width), width};
}

// A headerless u32 file read as u16 (the default dtype) is id, 0, id, 0, ...
// for any vocabulary below 65536: it would train on that without a word.
// Refused when, in a sample of at most ~1M tokens, every odd u16 is 0 while
// some even one is not (a real u16 stream has 0 at half its places only if
// id 0 is its most common token by far, and then not at every odd one).
void check_not_u32_as_u16(const TokenSpan& t, const std::string& path) {
  if (t.width != 2 || t.count < 64) return;
  const uint64_t pairs = t.count / 2, stride = std::max<uint64_t>(1, pairs / (uint64_t{1} << 19));
  bool even_nonzero = false;
  for (uint64_t i = 0; i < pairs; i += stride) {
    const uint8_t* p = t.data + 4 * i;
    if (p[2] != 0 || p[3] != 0) return;  // an odd u16 that is not 0
    even_nonzero = even_nonzero || p[0] != 0 || p[1] != 0;
  }
  if (even_nonzero)
    throw ConfigError(str_cat("[data] data.path '", path, "' looks like u32 tokens (every second u16 is 0) but "
                              "data.token_dtype is u16; set data.token_dtype: u32"));
}

}  // namespace

std::unique_ptr<DataLoader> make_token_file_loader(const DataConfig& cfg, Split split, int vocab_size, int B, int T,
                                                   uint64_t seed, int dp_rank, int dp_size) {
  int width;
  if (cfg.token_dtype == "u16") {
    width = 2;
  } else if (cfg.token_dtype == "u32") {
    width = 4;
  } else {
    throw ConfigError(str_cat("[data] data.token_dtype = '", cfg.token_dtype, "' is not one of u16 | u32"));
  }
  if (cfg.path.empty()) throw ConfigError("[data] data.path is empty; data.kind = tokens needs a token file");
  std::shared_ptr<MappedFile> file;
  try {
    file = std::make_shared<MappedFile>(MappedFile::open(cfg.path, false, "data.path"));
  } catch (const IoError& e) {
    throw IoError(str_cat("[data] data.path: ", e.what()));
  }
  const TokenSpan tokens = token_span(*file, width, cfg.token_dtype);
  if (tokens.count == 0) throw IoError(str_cat("[data] data.path '", cfg.path, "' holds no tokens"));
  check_not_u32_as_u16(tokens, cfg.path);
  check_token_ids(tokens, vocab_size, cfg.path);
  return std::make_unique<WindowLoader>("tokens", kTokensKindId, cfg.path, std::move(file), tokens, cfg.valid_fraction,
                                        split, B, T, seed, dp_rank, dp_size);
}

}  // namespace lintrain
