// Data loaders: determinism, exact resume, DP sharding against the single-rank
// global batch, split boundaries and windows checked against the corpus the
// test wrote itself, token files (raw and llm.c headers), MQAR structure and
// query-slot distribution against the exact probabilities, and error messages.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "runtime/data/data_loader.h"
#include "runtime/data/mqar.h"
#include "runtime/data/token_file.h"
#include "runtime/error.h"
#include "temp_dir.h"
#include "runtime/rng.h"

using namespace lintrain;
namespace fs = std::filesystem;

namespace {

using test::TempDir;

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

template <typename T>
void write_tokens(const std::string& path, const std::vector<T>& ids, const std::vector<int32_t>& header = {}) {
  std::string bytes;
  for (int32_t h : header) bytes.append(reinterpret_cast<const char*>(&h), 4);
  bytes.append(reinterpret_cast<const char*>(ids.data()), ids.size() * sizeof(T));  // x86: little-endian
  write_bytes(path, bytes);
}

std::vector<int32_t> llmc_header(int32_t magic, int32_t version, int32_t ntok) {
  std::vector<int32_t> h(kLlmcHeaderInts, 0);
  h[0] = magic;
  h[1] = version;
  h[2] = ntok;
  return h;
}

// Printable pseudo-random text (an independent generator, not the loader's).
std::string random_text(size_t n, uint32_t seed) {
  std::string s(n, ' ');
  uint32_t x = seed;
  for (auto& c : s) {
    x = x * 1664525u + 1013904223u;
    c = static_cast<char>('a' + (x >> 24) % 26);
  }
  return s;
}

DataConfig text_config(const std::string& path, int T, double valid_fraction = 0.1) {
  DataConfig c;
  c.kind = "text";
  c.path = path;
  c.seq_len = T;
  c.valid_fraction = valid_fraction;
  return c;
}

DataConfig mqar_config(int T, int pairs, int queries = 0) {
  DataConfig c;
  c.kind = "mqar";
  c.seq_len = T;
  c.mqar_pairs = pairs;
  c.mqar_queries = queries;
  return c;
}

std::vector<Batch> take(DataLoader& loader, int n) {
  std::vector<Batch> out(static_cast<size_t>(n));
  for (auto& b : out) loader.next(b);
  return out;
}

void expect_same(const Batch& a, const Batch& b) {
  EXPECT_EQ(a.B, b.B);
  EXPECT_EQ(a.T, b.T);
  EXPECT_EQ(a.inputs, b.inputs);
  EXPECT_EQ(a.targets, b.targets);
}

// Runs `f` expecting an exception of type E whose message contains every
// fragment; returns the message.
template <typename E, typename F>
std::string expect_error(F f, const std::vector<std::string>& fragments) {
  try {
    f();
  } catch (const E& e) {
    const std::string msg = e.what();
    for (const auto& frag : fragments) EXPECT_NE(msg.find(frag), std::string::npos) << "'" << frag << "' not in: " << msg;
    return msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
    return "";
  }
  ADD_FAILURE() << "no exception thrown";
  return "";
}

// DP rule (data_loader.h): rank r's batch = rows [r*B, (r+1)*B) of the
// single-rank loader with batch B * dp_size, for every global batch.
void check_dp_sharding(const DataConfig& cfg, Split split, int vocab, int B, int T, int dp) {
  auto global = make_data_loader(cfg, split, vocab, B * dp, T, 7, 0, 1);
  std::vector<std::unique_ptr<DataLoader>> ranks;
  for (int r = 0; r < dp; ++r) ranks.push_back(make_data_loader(cfg, split, vocab, B, T, 7, r, dp));
  for (int step = 0; step < 4; ++step) {
    Batch g;
    global->next(g);
    std::set<std::vector<int32_t>> rows;
    for (int r = 0; r < dp; ++r) {
      Batch b;
      ranks[static_cast<size_t>(r)]->next(b);
      ASSERT_EQ(b.B, B);
      for (int i = 0; i < B; ++i) {
        const int row = r * B + i;
        EXPECT_TRUE(std::equal(b.input_row(i), b.input_row(i) + T, g.input_row(row))) << "rank " << r << " row " << i;
        EXPECT_TRUE(std::equal(b.target_row(i), b.target_row(i) + T, g.target_row(row)));
        rows.insert(std::vector<int32_t>(b.input_row(i), b.input_row(i) + T));
      }
    }
    // Disjoint: the dp*B rows are different sequences (windows/samples).
    EXPECT_EQ(rows.size(), static_cast<size_t>(B * dp)) << "step " << step;
  }
}

}  // namespace

// ---- text ------------------------------------------------------------------------

TEST(TextData, DeterministicFromSeedAndDifferentAcrossSeeds) {
  TempDir dir;
  write_bytes(dir.file("corpus.txt"), random_text(5000, 1));
  const DataConfig cfg = text_config(dir.file("corpus.txt"), 32);
  auto a = make_data_loader(cfg, Split::Train, 256, 4, 32, 1234);
  auto b = make_data_loader(cfg, Split::Train, 256, 4, 32, 1234);
  auto c = make_data_loader(cfg, Split::Train, 256, 4, 32, 999);
  const auto ba = take(*a, 5), bb = take(*b, 5), bc = take(*c, 5);
  for (int i = 0; i < 5; ++i) expect_same(ba[i], bb[i]);
  EXPECT_NE(ba[0].inputs, bc[0].inputs);
  EXPECT_NE(ba[0].inputs, ba[1].inputs);  // the stream moves on
}

TEST(TextData, TrainWindowsComeFromTheTrainSplitAndShiftByOne) {
  TempDir dir;
  const std::string text = random_text(4000, 2);
  write_bytes(dir.file("c.txt"), text);
  const int T = 24;
  const double vf = 0.25;
  const size_t n_train = 3000;  // floor(4000 * 0.75)
  auto loader = make_data_loader(text_config(dir.file("c.txt"), T, vf), Split::Train, 256, 8, T, 5);
  for (int step = 0; step < 20; ++step) {
    Batch b;
    loader->next(b);
    for (int i = 0; i < b.B; ++i) {
      std::string window(b.input_row(i), b.input_row(i) + T);
      window += static_cast<char>(b.target_row(i)[T - 1]);
      for (int t = 0; t + 1 < T; ++t) EXPECT_EQ(b.target_row(i)[t], b.input_row(i)[t + 1]);
      // 25 random letters identify their position in the corpus.
      const size_t at = text.find(window);
      ASSERT_NE(at, std::string::npos);
      EXPECT_LE(at + T + 1, n_train) << "a train window reaches into the validation split";
    }
  }
}

TEST(TextData, ValidationIsSequentialFromTheSplitBoundaryAndWraps) {
  TempDir dir;
  const std::string text = random_text(1000, 3);
  write_bytes(dir.file("c.txt"), text);
  const int T = 16;
  // valid = bytes [900, 1000): W = (100 - 1) / 16 = 6 windows at 900, 916, ..., 980.
  auto loader = make_data_loader(text_config(dir.file("c.txt"), T, 0.1), Split::Valid, 256, 4, T, 5);
  std::vector<int32_t> firsts;
  for (int step = 0; step < 3; ++step) {
    Batch b;
    loader->next(b);
    for (int i = 0; i < b.B; ++i) {
      const size_t window = static_cast<size_t>(step * 4 + i) % 6;
      const size_t start = 900 + window * T;
      for (int t = 0; t < T; ++t) {
        EXPECT_EQ(b.input_row(i)[t], static_cast<unsigned char>(text[start + t]));
        EXPECT_EQ(b.target_row(i)[t], static_cast<unsigned char>(text[start + t + 1]));
      }
    }
  }
  // reset() shows the next evaluation the same data.
  loader->reset();
  Batch again;
  loader->next(again);
  EXPECT_EQ(again.input_row(0)[0], static_cast<unsigned char>(text[900]));
}

TEST(TextData, DirectoryIsSortedFilesJoinedByNewlines) {
  TempDir dir;
  fs::create_directories(dir.file("corpus"));
  write_bytes(dir.file("corpus/b.txt"), "world");
  write_bytes(dir.file("corpus/a.txt"), "hello");
  write_bytes(dir.file("corpus/.hidden"), "XXXX");
  fs::create_directories(dir.file("corpus/.git"));  // hidden entries are left out, directories too
  const std::string expected = "hello\nworld";
  const int T = static_cast<int>(expected.size()) - 1;  // exactly one window fits
  auto loader = make_data_loader(text_config(dir.file("corpus"), T, 0.0), Split::Train, 256, 1, T, 1);
  Batch b;
  loader->next(b);
  EXPECT_EQ(std::string(b.inputs.begin(), b.inputs.end()), expected.substr(0, T));
  EXPECT_EQ(std::string(b.targets.begin(), b.targets.end()), expected.substr(1));
}

// Files in a subdirectory were silently not read: every entry that is not a
// hidden one or a regular file is refused by name instead.
TEST(TextData, ADirectoryWithASubdirectoryOrALinkIsRefusedNamingThem) {
  TempDir dir;
  fs::create_directories(dir.file("corpus/sub"));
  write_bytes(dir.file("corpus/a.txt"), "hello world, hello world");
  write_bytes(dir.file("corpus/sub/big.txt"), "more text");
  fs::create_symlink(dir.file("corpus"), dir.file("corpus/loop"));  // a link loop, never walked
  fs::create_symlink(dir.file("nowhere"), dir.file("corpus/dangling"));
  try {
    make_data_loader(text_config(dir.file("corpus"), 4, 0.0), Split::Train, 256, 1, 4, 1);
    FAIL() << "a data directory with a subdirectory was read";
  } catch (const IoError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("holds 'dangling' (a dangling link), 'loop' (a directory), 'sub' (a directory), which lintrain "
                       "would not read: it reads only the regular files directly in data.path"),
              std::string::npos)
        << msg;
  }
}

TEST(TextData, StateRestoreContinuesIdentically) {
  TempDir dir;
  write_bytes(dir.file("c.txt"), random_text(3000, 4));
  const DataConfig cfg = text_config(dir.file("c.txt"), 20);
  auto a = make_data_loader(cfg, Split::Train, 256, 3, 20, 42);
  take(*a, 3);
  const DataLoaderState saved = a->state();
  const auto expected = take(*a, 5);
  auto b = make_data_loader(cfg, Split::Train, 256, 3, 20, 42);
  b->restore(saved);
  const auto got = take(*b, 5);
  for (int i = 0; i < 5; ++i) expect_same(got[i], expected[i]);
  // Restoring into a loader with another seed or split is refused.
  auto other_seed = make_data_loader(cfg, Split::Train, 256, 3, 20, 43);
  EXPECT_THROW(other_seed->restore(saved), Error);
  auto valid = make_data_loader(cfg, Split::Valid, 256, 3, 20, 42);
  EXPECT_THROW(valid->restore(saved), Error);
}

TEST(TextData, DataParallelShardsPartitionTheGlobalBatch) {
  TempDir dir;
  write_bytes(dir.file("c.txt"), random_text(20000, 5));
  const DataConfig cfg = text_config(dir.file("c.txt"), 16, 0.2);
  check_dp_sharding(cfg, Split::Train, 256, 2, 16, 3);
  check_dp_sharding(cfg, Split::Valid, 256, 2, 16, 4);
}

TEST(TextData, ErrorsNameThePathSizeAndFix) {
  TempDir dir;
  expect_error<IoError>([&] { make_data_loader(text_config(dir.file("nope.txt"), 8), Split::Train, 256, 1, 8, 1); },
                        {"data.path", "nope.txt", "does not exist"});
  write_bytes(dir.file("empty.txt"), "");
  expect_error<IoError>([&] { make_data_loader(text_config(dir.file("empty.txt"), 8), Split::Train, 256, 1, 8, 1); },
                        {"data.path", "empty.txt", "empty"});
  fs::create_directories(dir.file("emptydir"));
  expect_error<IoError>([&] { make_data_loader(text_config(dir.file("emptydir"), 8), Split::Train, 256, 1, 8, 1); },
                        {"emptydir", "empty"});
  // 100 bytes, valid_fraction 0.1: train has 90 tokens, T = 100 needs 101.
  write_bytes(dir.file("short.txt"), random_text(100, 6));
  expect_error<ConfigError>(
      [&] { make_data_loader(text_config(dir.file("short.txt"), 100), Split::Train, 256, 1, 100, 1); },
      {"data.path", "short.txt", "90 tokens", "101", "lower data.seq_len or data.valid_fraction"});
  expect_error<ConfigError>(
      [&] { make_data_loader(text_config(dir.file("short.txt"), 10), Split::Valid, 256, 1, 10, 1); },
      {"valid split", "10 tokens", "11", "raise data.valid_fraction"});
  expect_error<ConfigError>(
      [&] { make_data_loader(text_config(dir.file("short.txt"), 8, 0.0), Split::Valid, 256, 1, 8, 1); },
      {"valid split", "0 tokens"});
  // A byte outside a small vocabulary.
  write_bytes(dir.file("bin.txt"), std::string(50, 'a') + "\xC8" + std::string(50, 'a'));
  expect_error<ConfigError>(
      [&] { make_data_loader(text_config(dir.file("bin.txt"), 8), Split::Train, 128, 1, 8, 1); },
      {"token id 200", "position 50", "model.vocab_size = 128"});
  DataConfig bad;
  bad.kind = "parquet";
  expect_error<ConfigError>([&] { make_data_loader(bad, Split::Train, 256, 1, 8, 1); }, {"data.kind", "parquet"});
}

// ---- tokens ------------------------------------------------------------------------

DataConfig tokens_config(const std::string& path, const std::string& dtype, int T, double vf = 0.1) {
  DataConfig c;
  c.kind = "tokens";
  c.path = path;
  c.token_dtype = dtype;
  c.seq_len = T;
  c.valid_fraction = vf;
  return c;
}

// Token id = its position, so every window tells where it came from.
template <typename T>
void check_position_tokens(const DataConfig& cfg, uint64_t n, int vocab) {
  const int L = cfg.seq_len;
  const uint64_t n_train = static_cast<uint64_t>(std::floor(static_cast<double>(n) * (1 - cfg.valid_fraction)));
  auto train = make_data_loader(cfg, Split::Train, vocab, 4, L, 11);
  bool saw_late = false;
  for (int step = 0; step < 50; ++step) {
    Batch b;
    train->next(b);
    for (int i = 0; i < b.B; ++i) {
      const int64_t start = b.input_row(i)[0];
      for (int t = 0; t < L; ++t) {
        ASSERT_EQ(b.input_row(i)[t], start + t);
        ASSERT_EQ(b.target_row(i)[t], start + t + 1);
      }
      ASSERT_LE(static_cast<uint64_t>(start) + L + 1, n_train);
      saw_late |= static_cast<uint64_t>(start) + L + 1 > n_train / 2;
    }
  }
  EXPECT_TRUE(saw_late) << "train windows should cover the whole train split";
  auto valid = make_data_loader(cfg, Split::Valid, vocab, 2, L, 11);
  Batch v;
  valid->next(v);
  EXPECT_EQ(static_cast<uint64_t>(v.input_row(0)[0]), n_train);
  EXPECT_EQ(static_cast<uint64_t>(v.input_row(1)[0]), n_train + L);
}

TEST(TokenData, RawU16AndU32Files) {
  TempDir dir;
  std::vector<uint16_t> ids16(3000);
  for (size_t i = 0; i < ids16.size(); ++i) ids16[i] = static_cast<uint16_t>(i);
  write_tokens(dir.file("t16.bin"), ids16);
  check_position_tokens<uint16_t>(tokens_config(dir.file("t16.bin"), "u16", 32), 3000, 4096);

  std::vector<uint32_t> ids32(5000);
  for (size_t i = 0; i < ids32.size(); ++i) ids32[i] = static_cast<uint32_t>(i);
  write_tokens(dir.file("t32.bin"), ids32);
  check_position_tokens<uint32_t>(tokens_config(dir.file("t32.bin"), "u32", 64, 0.2), 5000, 100000);
}

// A headerless u32 file under the default u16 reads as id, 0, id, 0, ...:
// refused, naming the fix. u16 ids with many zeros (not at every odd place) load.
TEST(TokenData, U32FileReadAsU16IsRefused) {
  TempDir dir;
  std::vector<uint32_t> ids32(5000);
  for (size_t i = 0; i < ids32.size(); ++i) ids32[i] = static_cast<uint32_t>(1 + i % 200);
  write_tokens(dir.file("t32.bin"), ids32);
  expect_error<ConfigError>(
      [&] { make_data_loader(tokens_config(dir.file("t32.bin"), "u16", 16), Split::Train, 256, 1, 16, 1); },
      {"t32.bin", "looks like u32 tokens", "every second u16 is 0", "data.token_dtype: u32"});
  EXPECT_NO_THROW(make_data_loader(tokens_config(dir.file("t32.bin"), "u32", 16), Split::Train, 256, 1, 16, 1));
  std::vector<uint16_t> zeros(4000, 0);
  for (size_t i = 0; i < zeros.size(); i += 2) zeros[i] = 5;
  zeros[1001] = 9;  // one odd id that is not 0 in the sample
  write_tokens(dir.file("z16.bin"), zeros);
  EXPECT_NO_THROW(make_data_loader(tokens_config(dir.file("z16.bin"), "u16", 16), Split::Train, 256, 1, 16, 1));
}

TEST(TokenData, LlmcHeaderedShards) {
  TempDir dir;
  std::vector<uint16_t> ids16(2000);
  for (size_t i = 0; i < ids16.size(); ++i) ids16[i] = static_cast<uint16_t>(i);
  write_tokens(dir.file("gpt2.bin"), ids16, llmc_header(kLlmcMagicU16, 1, 2000));
  check_position_tokens<uint16_t>(tokens_config(dir.file("gpt2.bin"), "u16", 16), 2000, 50257);

  std::vector<uint32_t> ids32(1500);
  for (size_t i = 0; i < ids32.size(); ++i) ids32[i] = static_cast<uint32_t>(i);
  write_tokens(dir.file("llama3.bin"), ids32, llmc_header(kLlmcMagicU32, 7, 1500));
  check_position_tokens<uint32_t>(tokens_config(dir.file("llama3.bin"), "u32", 16), 1500, 128256);

  // The header's width must match data.token_dtype.
  expect_error<ConfigError>(
      [&] { make_data_loader(tokens_config(dir.file("gpt2.bin"), "u32", 16), Split::Train, 50257, 1, 16, 1); },
      {"llm.c", "u16", "data.token_dtype"});
  // A header that claims more tokens than follow.
  write_tokens(dir.file("trunc.bin"), ids16, llmc_header(kLlmcMagicU16, 1, 2001));
  expect_error<IoError>(
      [&] { make_data_loader(tokens_config(dir.file("trunc.bin"), "u16", 16), Split::Train, 50257, 1, 16, 1); },
      {"trunc.bin", "2001 tokens"});
  write_tokens(dir.file("badver.bin"), ids16, llmc_header(kLlmcMagicU16, 3, 2000));
  expect_error<IoError>(
      [&] { make_data_loader(tokens_config(dir.file("badver.bin"), "u16", 16), Split::Train, 50257, 1, 16, 1); },
      {"version 3"});
}

TEST(TokenData, OutOfVocabularyIdIsReportedWithValueAndPosition) {
  TempDir dir;
  std::vector<uint16_t> ids(1000, 7);
  ids[123] = 300;
  ids[700] = 999;
  write_tokens(dir.file("t.bin"), ids);
  expect_error<ConfigError>(
      [&] { make_data_loader(tokens_config(dir.file("t.bin"), "u16", 16), Split::Train, 256, 1, 16, 1); },
      {"token id 300", "position 123", "model.vocab_size = 256", "largest id is 999", "at least 1000", "t.bin"});
  EXPECT_NO_THROW(make_data_loader(tokens_config(dir.file("t.bin"), "u16", 16), Split::Train, 1000, 1, 16, 1));
}

TEST(TokenData, BadFilesAndSettings) {
  TempDir dir;
  write_bytes(dir.file("odd.bin"), std::string(101, '\0'));
  expect_error<IoError>(
      [&] { make_data_loader(tokens_config(dir.file("odd.bin"), "u16", 8), Split::Train, 256, 1, 8, 1); },
      {"odd.bin", "101 bytes", "u16"});
  expect_error<IoError>(
      [&] { make_data_loader(tokens_config(dir.file("missing.bin"), "u16", 8), Split::Train, 256, 1, 8, 1); },
      {"missing.bin", "does not exist"});
  expect_error<ConfigError>(
      [&] { make_data_loader(tokens_config(dir.file("odd.bin"), "i8", 8), Split::Train, 256, 1, 8, 1); },
      {"data.token_dtype", "i8"});
  write_tokens(dir.file("short.bin"), std::vector<uint16_t>(10, 1));
  expect_error<ConfigError>(
      [&] { make_data_loader(tokens_config(dir.file("short.bin"), "u16", 16), Split::Train, 256, 1, 16, 1); },
      {"short.bin", "9 tokens", "17", "lower data.seq_len"});
}

TEST(TokenData, StateRestoreAndSharding) {
  TempDir dir;
  std::vector<uint32_t> ids(10000);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<uint32_t>(i * 7 % 10007);
  write_tokens(dir.file("t.bin"), ids);
  const DataConfig cfg = tokens_config(dir.file("t.bin"), "u32", 32);
  check_dp_sharding(cfg, Split::Train, 10007, 3, 32, 2);
  // Resume on a different DP layout with the same global batch sees the same data.
  auto one = make_data_loader(cfg, Split::Train, 10007, 4, 32, 3, 0, 1);
  take(*one, 2);
  const DataLoaderState s = one->state();
  Batch whole;
  one->next(whole);
  auto rank1 = make_data_loader(cfg, Split::Train, 10007, 2, 32, 3, 1, 2);
  rank1->restore(s);
  Batch half;
  rank1->next(half);
  EXPECT_TRUE(std::equal(half.inputs.begin(), half.inputs.end(), whole.inputs.begin() + 2 * 32));
}

// ---- MQAR ------------------------------------------------------------------------

// Checks every structural promise of mqar.h on one sequence.
void check_mqar_sequence(const int32_t* in, const int32_t* tg, int T, int P, int Q, int V) {
  std::map<int32_t, int32_t> value_of;
  std::set<int32_t> values;
  for (int i = 0; i < P; ++i) {
    const int32_t k = in[2 * i], v = in[2 * i + 1];
    EXPECT_GE(k, 1);
    EXPECT_LT(k, V / 2);
    EXPECT_GE(v, V / 2);
    EXPECT_LT(v, V);
    EXPECT_TRUE(value_of.emplace(k, v).second) << "key " << k << " repeated in the context";
    EXPECT_TRUE(values.insert(v).second) << "value " << v << " repeated in the context";
    EXPECT_EQ(tg[2 * i], kIgnoreTarget);
    EXPECT_EQ(tg[2 * i + 1], kIgnoreTarget);
  }
  int scored = 0;
  std::map<int32_t, int> asked;
  for (int t = 2 * P; t < T; ++t) {
    EXPECT_GE(in[t], 0);
    EXPECT_LT(in[t], V);
    if (tg[t] == kIgnoreTarget) continue;
    ++scored;
    auto it = value_of.find(in[t]);
    ASSERT_NE(it, value_of.end()) << "query at " << t << " is not a key of the context";
    EXPECT_EQ(tg[t], it->second) << "query at " << t;
    ++asked[in[t]];
  }
  EXPECT_EQ(scored, Q);
  if (Q <= P) {
    for (const auto& [k, n] : asked) EXPECT_EQ(n, 1) << "key " << k << " asked twice with Q <= P";
  } else {
    EXPECT_EQ(asked.size(), static_cast<size_t>(P)) << "with Q > P every key is asked";
  }
}

TEST(Mqar, StructureForQueriesEqualFewerAndMoreThanPairs) {
  struct Case {
    int T, P, Q, V;
  };
  for (const Case c : {Case{64, 8, 0, 256}, Case{40, 16, 8, 64}, Case{30, 4, 12, 10}, Case{17, 8, 1, 18}}) {
    auto loader = make_data_loader(mqar_config(c.T, c.P, c.Q), Split::Train, c.V, 8, c.T, 5);
    const int Q = c.Q == 0 ? c.P : c.Q;
    for (int step = 0; step < 20; ++step) {
      Batch b;
      loader->next(b);
      for (int i = 0; i < b.B; ++i) check_mqar_sequence(b.input_row(i), b.target_row(i), c.T, c.P, Q, c.V);
    }
  }
}

TEST(Mqar, FirstQuerySlotFollowsThePowerLaw) {
  // One pair, one query, R = 8 slots: the query's slot must be distributed as
  // (s+1)^(a-1) / sum, computed here directly from the definition.
  const int P = 1, R = 8, T = 2 * P + R, N = 40000;
  auto loader = make_data_loader(mqar_config(T, P, 1), Split::Train, 64, 100, T, 9);
  std::vector<int> count(R, 0);
  for (int step = 0; step < N / 100; ++step) {
    Batch b;
    loader->next(b);
    for (int i = 0; i < b.B; ++i) {
      for (int s = 0; s < R; ++s) count[s] += b.target_row(i)[2 * P + s] != kIgnoreTarget;
    }
  }
  double z = 0;
  for (int s = 0; s < R; ++s) z += std::pow(s + 1.0, MqarLoader::kPowerA - 1);
  for (int s = 0; s < R; ++s) {
    const double p = std::pow(s + 1.0, MqarLoader::kPowerA - 1) / z;
    // 5 binomial standard deviations: a false failure has probability ~1e-6.
    const double tol = 5 * std::sqrt(p * (1 - p) / N);
    EXPECT_NEAR(count[s] / static_cast<double>(N), p, tol) << "slot " << s;
  }
}

TEST(Mqar, ValidationIsADifferentStreamAndResetRepeatsIt) {
  auto train = make_data_loader(mqar_config(64, 8), Split::Train, 256, 4, 64, 5);
  auto valid = make_data_loader(mqar_config(64, 8), Split::Valid, 256, 4, 64, 5);
  Batch t, v, v2;
  train->next(t);
  valid->next(v);
  EXPECT_NE(t.inputs, v.inputs);
  valid->reset();
  valid->next(v2);
  expect_same(v, v2);
}

TEST(Mqar, DeterminismRestoreAndSharding) {
  const DataConfig cfg = mqar_config(48, 6, 4);
  auto a = make_data_loader(cfg, Split::Train, 128, 4, 48, 77);
  auto b = make_data_loader(cfg, Split::Train, 128, 4, 48, 77);
  const auto ba = take(*a, 3), bb = take(*b, 3);
  for (int i = 0; i < 3; ++i) expect_same(ba[i], bb[i]);
  const DataLoaderState s = a->state();
  const auto more = take(*a, 3);
  auto c = make_data_loader(cfg, Split::Train, 128, 4, 48, 77);
  c->restore(s);
  const auto again = take(*c, 3);
  for (int i = 0; i < 3; ++i) expect_same(more[i], again[i]);
  check_dp_sharding(cfg, Split::Train, 128, 2, 48, 4);
  check_dp_sharding(cfg, Split::Valid, 128, 3, 48, 2);
}

TEST(Mqar, ErrorsForTooShortSequencesAndSmallVocabularies) {
  expect_error<ConfigError>([] { make_data_loader(mqar_config(20, 8), Split::Train, 256, 1, 20, 1); },
                            {"data.seq_len >= 2 * pairs + queries = 24", "got 20", "data.mqar_pairs"});
  expect_error<ConfigError>([] { make_data_loader(mqar_config(40, 8), Split::Train, 17, 1, 40, 1); },
                            {"model.vocab_size >= 2 * pairs + 2 = 18", "got 17"});
  expect_error<ConfigError>([] { make_data_loader(mqar_config(40, 0), Split::Train, 256, 1, 40, 1); },
                            {"data.mqar_pairs = 0"});
}

TEST(Batch, ScorePredictionsCountsOnlyScoredPositions) {
  Batch b;
  b.resize(1, 4);
  b.targets = {kIgnoreTarget, 5, kIgnoreTarget, 9};
  const int32_t pred[4] = {1, 5, 2, 8};
  const TargetScore s = score_predictions(b, pred);
  EXPECT_EQ(s.scored, 2);
  EXPECT_EQ(s.correct, 1);
  EXPECT_DOUBLE_EQ(s.accuracy(), 0.5);
}
