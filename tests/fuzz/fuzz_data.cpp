// libFuzzer target: the data readers (runtime/data/) through
// lintrain::make_data_loader. The first kHeader bytes of an input choose the
// loader and its settings, the rest is the data file's content:
//
//   byte 0      kind: 0 text file, 1 text directory (the content split in two
//               files at byte 8), 2 u16 token file, 3 u32 token file, 4 mqar
//               (no file: its settings come from bytes 8, 9), 5 a Megatron
//               .idx/.bin pair (the content split at the 16-bit little-endian
//               value of bytes 8, 9: .idx first; bit 4 of byte 7 clears
//               data.add_eod)
//   byte 1      T = 1 + b % 64          byte 2   B = 1 + b % 4
//   byte 3      valid_fraction = b / 256
//   bytes 4..6  vocab_size = 1 + the 24-bit little-endian value
//   byte 7      bit 0: the valid split; dp_size = 1 + (b >> 1) % 3,
//               dp_rank = (b >> 3) % dp_size
//   byte 8, 9   mqar_pairs = b % 64, mqar_queries = b % 64 (mqar only)
//   bytes 10,11 the seed
//
// The file is written to one temporary folder per process ($TMPDIR or /tmp),
// reused by every input. A loader that is built must hand out batches whose ids lie in the
// vocabulary (targets too, or kIgnoreTarget), and restoring its state must
// repeat a batch exactly; a bad file or setting must end in lintrain::Error.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "runtime/data/data_loader.h"
#include "runtime/error.h"

namespace {

constexpr size_t kHeader = 12;

// A plain array, not a std::string: the atexit handler runs after the
// statics constructed before its registration are destroyed.
char g_dir[4096];

void remove_temp_dir() {
  std::error_code ec;
  std::filesystem::remove_all(g_dir, ec);
}

std::string temp_dir() {
  if (g_dir[0] == '\0') {
    const char* tmp = std::getenv("TMPDIR");
    std::snprintf(g_dir, sizeof g_dir, "%s/lintrain-fuzz-data-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(g_dir) == nullptr) {
      std::perror("fuzz_data: mkdtemp");
      std::abort();
    }
    std::atexit(remove_temp_dir);
  }
  return g_dir;
}

void write_file(const std::string& path, const uint8_t* data, size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  if (!out) {
    std::fprintf(stderr, "fuzz_data: cannot write %s\n", path.c_str());
    std::abort();
  }
}

[[noreturn]] void finding(const char* what) {
  std::fprintf(stderr, "fuzz_data: %s\n", what);
  std::abort();
}

void check_batch(const lintrain::Batch& b, int B, int T, int vocab) {
  if (b.B != B || b.T != T || b.inputs.size() != size_t(B) * size_t(T) || b.targets.size() != b.inputs.size()) {
    finding("a batch has the wrong shape");
  }
  for (size_t i = 0; i < b.inputs.size(); ++i) {
    if (b.inputs[i] < 0 || b.inputs[i] >= vocab) finding("an input id is outside the vocabulary");
    if (b.targets[i] != lintrain::kIgnoreTarget && (b.targets[i] < 0 || b.targets[i] >= vocab)) {
      finding("a target id is outside the vocabulary");
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < kHeader) return 0;
  const uint8_t* h = data;
  const uint8_t* body = data + kHeader;
  const size_t body_size = size - kHeader;

  lintrain::DataConfig cfg;
  const int kind = h[0] % 6;
  const int T = 1 + h[1] % 64;
  const int B = 1 + h[2] % 4;
  cfg.seq_len = T;
  cfg.valid_fraction = h[3] / 256.0;
  const int vocab = 1 + int(uint32_t(h[4]) | uint32_t(h[5]) << 8 | uint32_t(h[6]) << 16);
  const lintrain::Split split = (h[7] & 1) ? lintrain::Split::Valid : lintrain::Split::Train;
  const int dp_size = 1 + (h[7] >> 1) % 3;
  const int dp_rank = (h[7] >> 3) % dp_size;
  const uint64_t seed = uint64_t(h[10]) | uint64_t(h[11]) << 8;

  const std::string dir = temp_dir();
  switch (kind) {
    case 0:
      cfg.kind = "text";
      cfg.path = dir + "/data.txt";
      write_file(cfg.path, body, body_size);
      break;
    case 1: {
      cfg.kind = "text";
      cfg.path = dir + "/texts";
      std::error_code ec;
      std::filesystem::remove_all(cfg.path, ec);
      std::filesystem::create_directory(cfg.path, ec);
      const size_t cut = std::min<size_t>(h[8], body_size);
      write_file(cfg.path + "/a.txt", body, cut);
      write_file(cfg.path + "/b.txt", body + cut, body_size - cut);
      break;
    }
    case 2:
    case 3:
      cfg.kind = "tokens";
      cfg.token_dtype = kind == 2 ? "u16" : "u32";
      cfg.path = dir + "/tokens.bin";
      write_file(cfg.path, body, body_size);
      break;
    case 5: {
      cfg.kind = "megatron";
      cfg.path = dir + "/mega";
      const size_t cut = std::min<size_t>(size_t(h[8]) | size_t(h[9]) << 8, body_size);
      write_file(cfg.path + ".idx", body, cut);
      write_file(cfg.path + ".bin", body + cut, body_size - cut);
      cfg.add_eod = (h[7] & 16) == 0;
      break;
    }
    default:
      cfg.kind = "mqar";
      cfg.mqar_pairs = h[8] % 64;
      cfg.mqar_queries = h[9] % 64;
      break;
  }

  try {
    auto loader = lintrain::make_data_loader(cfg, split, vocab, B, T, seed, dp_rank, dp_size);
    (void)loader->name();
    lintrain::Batch first, b;
    loader->next(first);
    check_batch(first, B, T, vocab);
    const lintrain::DataLoaderState after_first = loader->state();
    loader->next(b);
    check_batch(b, B, T, vocab);
    const lintrain::Batch second = b;
    loader->restore(after_first);
    loader->next(b);
    if (b.inputs != second.inputs || b.targets != second.targets) finding("a restored loader repeats differently");
    loader->reset();
    loader->next(b);
    if (b.inputs != first.inputs || b.targets != first.targets) finding("a reset loader repeats differently");
  } catch (const lintrain::Error&) {
    // expected: a clear error for bad data or settings
  }
  return 0;
}
