// data.kind megatron: an index written here byte by byte from the format
// description (megatron_dataset.h, Megatron-LM's indexed_dataset.py) loads and
// yields the right tokens and documents; every corruption the reader checks
// is refused with a message naming the file and the problem; the loader's
// windows are checked against a stream this test builds itself (documents
// joined by EOD, split by documents), and its determinism, resume, DP
// sharding and blend proportions against the rules of megatron_loader.h.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "runtime/data/data_loader.h"
#include "runtime/data/megatron_dataset.h"
#include "runtime/data/megatron_loader.h"
#include "runtime/error.h"
#include "temp_dir.h"

using namespace lintrain;

namespace {

using test::TempDir;

// Little-endian bytes of v, `n` of them, written out one by one.
void put(std::string& out, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

int width_of(uint8_t code) {
  switch (code) {
    case 1: case 2: return 1;
    case 3: case 8: return 2;
    case 4: case 7: return 4;
    default: return 8;
  }
}

// A dataset as the format describes it; sequences of token ids and the
// document index. serialize() writes .idx/.bin from these fields, so a test
// can break any one of them.
struct Pair {
  std::string magic = std::string("MMIDIDX\0\0", 9);
  uint64_t version = 1;
  uint8_t code = 8;  // uint16
  std::vector<std::vector<int64_t>> sequences;
  std::vector<int64_t> doc_index;  // empty = one document per sequence
  std::vector<int64_t> pointers;   // empty = the running sum of lengths
  int64_t count_override = -1;     // S in the header
  size_t bin_cut = 0;              // bytes cut off the end of the .bin
  size_t idx_cut = 0;              // bytes cut off the end of the .idx

  std::string write(const std::string& prefix) const {
    const int w = width_of(code);
    std::string bin;
    std::vector<int64_t> ptr = pointers;
    const bool fill_ptr = ptr.empty();
    for (const auto& s : sequences) {
      if (fill_ptr) ptr.push_back(static_cast<int64_t>(bin.size()));
      for (int64_t id : s) put(bin, static_cast<uint64_t>(id), w);
    }
    std::vector<int64_t> docs = doc_index;
    if (docs.empty())
      for (size_t i = 0; i <= sequences.size(); ++i) docs.push_back(static_cast<int64_t>(i));
    std::string idx = magic;
    put(idx, version, 8);
    put(idx, code, 1);
    put(idx, count_override >= 0 ? static_cast<uint64_t>(count_override) : sequences.size(), 8);
    put(idx, docs.size(), 8);
    for (const auto& s : sequences) put(idx, s.size(), 4);
    for (int64_t p : ptr) put(idx, static_cast<uint64_t>(p), 8);
    for (int64_t d : docs) put(idx, static_cast<uint64_t>(d), 8);
    std::ofstream(prefix + ".bin", std::ios::binary) << bin.substr(0, bin.size() - bin_cut);
    std::ofstream(prefix + ".idx", std::ios::binary) << idx.substr(0, idx.size() - idx_cut);
    return prefix;
  }
};

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

DataConfig megatron_config(const std::string& prefix, int T, double valid_fraction = 0.25) {
  DataConfig c;
  c.kind = "megatron";
  c.path = prefix;
  c.seq_len = T;
  c.valid_fraction = valid_fraction;
  return c;
}

// `docs` documents of distinct ids first, first + 1, ... of random lengths in [lo, hi].
std::vector<std::vector<int64_t>> make_docs(int docs, int lo, int hi, int64_t first, uint32_t seed) {
  std::vector<std::vector<int64_t>> out;
  uint32_t x = seed;
  int64_t id = first;
  for (int d = 0; d < docs; ++d) {
    x = x * 1664525u + 1013904223u;
    const int len = lo + static_cast<int>((x >> 16) % static_cast<uint32_t>(hi - lo + 1));
    out.emplace_back();
    for (int i = 0; i < len; ++i) out.back().push_back(id++);
  }
  return out;
}

// The split stream as megatron_loader.h defines it: the split's documents, each followed by eod.
std::vector<int32_t> expected_stream(const std::vector<std::vector<int64_t>>& docs, size_t first, size_t n, int eod,
                                     bool add_eod = true) {
  std::vector<int32_t> s;
  for (size_t d = first; d < first + n; ++d) {
    for (int64_t id : docs[d]) s.push_back(static_cast<int32_t>(id));
    if (add_eod) s.push_back(eod);
  }
  return s;
}

std::vector<Batch> take(DataLoader& loader, int n) {
  std::vector<Batch> out(static_cast<size_t>(n));
  for (auto& b : out) loader.next(b);
  return out;
}

// Where row b of `batch` sits in `stream` as a window of T+1 tokens (the
// inputs, then the last target), or -1.
int64_t window_start(const Batch& batch, int b, const std::vector<int32_t>& stream) {
  const int T = batch.T;
  std::vector<int32_t> w(batch.input_row(b), batch.input_row(b) + T);
  w.push_back(batch.target_row(b)[T - 1]);
  for (int t = 0; t + 1 < T; ++t)
    if (batch.target_row(b)[t] != batch.input_row(b)[t + 1]) return -1;
  for (size_t p = 0; p + w.size() <= stream.size(); ++p)
    if (std::equal(w.begin(), w.end(), stream.begin() + static_cast<int64_t>(p))) return static_cast<int64_t>(p);
  return -1;
}

}  // namespace

// ---- the reader -------------------------------------------------------------------

TEST(MegatronDataset, AnIndexWrittenByteByByteLoadsForEveryIntegerDtype) {
  TempDir dir;
  for (uint8_t code : {1, 2, 3, 4, 5, 8}) {
    Pair p;
    p.code = code;
    p.sequences = {{1, 2, 3}, {4, 5}, {6}, {7, 8, 9, 10}};
    p.doc_index = {0, 2, 3, 4};  // documents: sequences {0, 1}, {2}, {3}
    const std::string prefix = p.write(dir.file("ds" + std::to_string(code)));
    const MegatronDataset ds = MegatronDataset::open(prefix, 16);
    SCOPED_TRACE(megatron_dtype_name(code));
    EXPECT_EQ(static_cast<int>(ds.dtype()), code);
    EXPECT_EQ(ds.token_bytes(), width_of(code));
    EXPECT_EQ(ds.num_sequences(), 4u);
    EXPECT_EQ(ds.num_documents(), 3u);
    EXPECT_EQ(ds.num_tokens(), 10u);
    EXPECT_EQ(ds.document_begin(0), 0u);
    EXPECT_EQ(ds.document_begin(1), 5u);
    EXPECT_EQ(ds.document_begin(2), 6u);
    EXPECT_EQ(ds.document_begin(3), 10u);
    EXPECT_EQ(ds.sequence_begin(3), 6u);
    EXPECT_EQ(ds.sequence_length(3), 4);
    for (uint64_t i = 0; i < 10; ++i) EXPECT_EQ(ds.token(i), static_cast<int32_t>(i + 1));
  }
}

TEST(MegatronDataset, LargeIdsOfWideDtypes) {
  TempDir dir;
  Pair p;
  p.code = 4;  // int32
  p.sequences = {{0, 70000, 150000}, {149999}};
  const MegatronDataset ds = MegatronDataset::open(p.write(dir.file("wide")), 150001);
  EXPECT_EQ(ds.token(1), 70000);
  EXPECT_EQ(ds.token(3), 149999);
  Pair u;  // uint16 reaches 65535
  u.sequences = {{65535, 0}};
  u.sequences.push_back({1});
  EXPECT_EQ(MegatronDataset::open(u.write(dir.file("u16")), 65536).token(0), 65535);
}

TEST(MegatronDataset, CorruptOrMismatchedFilesAreRefusedWithClearMessages) {
  TempDir dir;
  Pair good;
  good.sequences = {{1, 2, 3}, {4, 5}, {6, 7}};
  auto open = [&](const Pair& p, const std::string& name, int vocab = 16) {
    const std::string prefix = p.write(dir.file(name));
    return [prefix, vocab] { MegatronDataset::open(prefix, vocab); };
  };
  ASSERT_NO_THROW(open(good, "good")());

  Pair p = good;
  p.bin_cut = 1;
  expect_error<IoError>(open(p, "short_bin"), {"short_bin.bin", "is 13 bytes", "describes 14", "truncated"});
  p = good;
  p.magic = std::string("TNTIDX\0\0\0", 9);
  expect_error<IoError>(open(p, "magic"), {"magic.idx", "magic MMIDIDX", "Megatron indexed dataset"});
  p = good;
  p.version = 2;
  expect_error<IoError>(open(p, "version"), {"version.idx", "format version 2", "reads version 1"});
  p = good;
  p.code = 9;
  expect_error<IoError>(open(p, "code9"), {"code9.idx", "dtype code 9", "1..8"});
  p = good;
  p.code = 7;
  expect_error<IoError>(open(p, "float"), {"float.idx", "float32", "not token ids"});
  // uint8 ids cannot hold a vocabulary of 300: written for another tokenizer.
  p = good;
  p.code = 1;
  expect_error<ConfigError>(open(p, "narrow", 300), {"narrow.idx", "uint8", "at most 255", "model.vocab_size = 300"});
  p = good;
  p.code = 8;
  expect_error<ConfigError>(open(p, "narrow16", 100000), {"uint16", "at most 65535", "model.vocab_size = 100000"});
  // An id outside the vocabulary, and a negative one.
  p = good;
  p.sequences[1][1] = 12;
  expect_error<ConfigError>(open(p, "oov", 10), {"oov.bin", "token id 12 at position 4", ">= model.vocab_size = 10",
                                                 "at least 13"});
  p = good;
  p.code = 3;  // int16
  p.sequences[2][0] = -3;
  expect_error<ConfigError>(open(p, "negative"), {"negative.bin", "token id -3 at position 5", "negative"});
  // Pointers: past the end of the .bin, or not the running sum of lengths.
  p = good;
  p.pointers = {0, 6, 400};
  expect_error<IoError>(open(p, "ptr_past"), {"ptr_past.idx", "sequence 2 starts at byte 400", "running sum"});
  p = good;
  p.pointers = {0, 4, 10};
  expect_error<IoError>(open(p, "ptr_gap"), {"sequence 1 starts at byte 4", "end at byte 6"});
  // Document index: not from 0, falling, not ending at the sequence count.
  p = good;
  p.doc_index = {1, 3};
  expect_error<IoError>(open(p, "doc0"), {"doc0.idx", "document index entry 0 is 1, expected 0"});
  p = good;
  p.doc_index = {0, 2, 1, 3};
  expect_error<IoError>(open(p, "docfall"), {"document index entry 2 is 1 after 2"});
  p = good;
  p.doc_index = {0, 1, 2};
  expect_error<IoError>(open(p, "docend"), {"the last document index entry is 2", "3 sequences"});
  // Sizes: a truncated .idx, a header count that does not fit, trailing bytes, a longer .bin.
  p = good;
  p.idx_cut = 3;
  expect_error<IoError>(open(p, "short_idx"), {"short_idx.idx", "truncated"});
  p = good;
  p.count_override = int64_t{1} << 40;
  expect_error<IoError>(open(p, "count"), {"count.idx", "do not fit"});
  p = good;
  p.idx_cut = 80;
  expect_error<IoError>(open(p, "header"), {"header.idx", "shorter than the 34-byte header"});
  {
    const std::string prefix = good.write(dir.file("long_bin"));
    std::ofstream(prefix + ".bin", std::ios::binary | std::ios::app) << "xy";
    expect_error<IoError>([&] { MegatronDataset::open(prefix, 16); }, {"long_bin.bin", "not a pair"});
  }
  // A missing file names the prefix convention.
  const std::string prefix = good.write(dir.file("lonely"));
  std::remove((prefix + ".bin").c_str());
  expect_error<IoError>([&] { MegatronDataset::open(prefix, 16); },
                        {"lonely.bin", "does not exist", "<prefix>.bin and <prefix>.idx"});
}

// ---- the loader ------------------------------------------------------------------

TEST(MegatronLoader, WindowsComeFromTheSplitsDocumentsJoinedByEod) {
  TempDir dir;
  const auto docs = make_docs(12, 3, 30, 0, 1);  // ids 0..~200, all distinct
  Pair p;
  p.sequences = docs;
  const std::string prefix = p.write(dir.file("docs"));
  const int vocab = 512, T = 8, eod = vocab - 1;
  const DataConfig cfg = megatron_config(prefix, T, 0.25);  // valid: the last ceil(12 * 0.25) = 3 documents
  const auto train_stream = expected_stream(docs, 0, 9, eod);
  const auto valid_stream = expected_stream(docs, 9, 3, eod);

  auto train = make_data_loader(cfg, Split::Train, vocab, 4, T, 5);
  std::set<int64_t> starts;
  for (const Batch& b : take(*train, 50))
    for (int i = 0; i < b.B; ++i) {
      const int64_t s = window_start(b, i, train_stream);
      ASSERT_GE(s, 0) << "a training window that is not a window of the training documents";
      starts.insert(s);
    }
  EXPECT_GT(starts.size(), 50u);  // drawn, not one window over and over

  auto valid = make_data_loader(cfg, Split::Valid, vocab, 2, T, 5);
  const uint64_t W = (valid_stream.size() - 1) / T;
  EXPECT_EQ(valid->distinct_sequences(), W);
  uint64_t j = 0;
  for (const Batch& b : take(*valid, static_cast<int>(W)))  // 2W sequences: wraps once
    for (int i = 0; i < b.B; ++i, ++j) EXPECT_EQ(window_start(b, i, valid_stream), static_cast<int64_t>(j % W * T));

  // data.eod_token and data.add_eod.
  DataConfig own = cfg;
  own.eod_token = 300;
  auto v300 = make_data_loader(own, Split::Valid, vocab, 1, T, 5);
  Batch b;
  const auto stream300 = expected_stream(docs, 9, 3, 300);
  v300->next(b);
  EXPECT_EQ(window_start(b, 0, stream300), 0);
  own.add_eod = false;
  const auto bare = expected_stream(docs, 9, 3, 0, false);
  auto vbare = make_data_loader(own, Split::Valid, vocab, 1, T, 5);
  for (int k = 0; k < 4; ++k) {
    vbare->next(b);
    EXPECT_EQ(window_start(b, 0, bare), k * T);
  }
}

TEST(MegatronLoader, EmptyDocumentsAreAnEodOrNothing) {
  TempDir dir;
  const std::vector<std::vector<int64_t>> docs = {{1, 2, 3}, {}, {4, 5}, {}, {}, {6, 7, 8, 9}, {10}, {11, 12}};
  Pair p;
  p.sequences = docs;
  DataConfig cfg = megatron_config(p.write(dir.file("gaps")), 2, 0.5);  // valid: the last 4 documents
  for (bool add_eod : {true, false}) {
    cfg.add_eod = add_eod;
    SCOPED_TRACE(add_eod ? "add_eod" : "no eod");
    const auto valid_stream = expected_stream(docs, 4, 4, 15, add_eod);  // [E] 6 7 8 9 [E] 10 [E] 11 12 [E]
    const auto train_stream = expected_stream(docs, 0, 4, 15, add_eod);
    auto valid = make_data_loader(cfg, Split::Valid, 16, 1, 2, 3);
    const int64_t W = static_cast<int64_t>(valid_stream.size() - 1) / 2;
    Batch b;
    for (int64_t j = 0; j < 2 * W; ++j) {
      valid->next(b);
      EXPECT_EQ(window_start(b, 0, valid_stream), j % W * 2) << "window " << j;
    }
    auto train = make_data_loader(cfg, Split::Train, 16, 4, 2, 3);
    for (const Batch& t : take(*train, 20))
      for (int i = 0; i < t.B; ++i) EXPECT_GE(window_start(t, i, train_stream), 0);
  }
}

TEST(MegatronLoader, DeterministicResumableAndShardedByTheDataParallelRule) {
  TempDir dir;
  Pair p;
  p.sequences = make_docs(40, 5, 60, 0, 2);
  const DataConfig cfg = megatron_config(p.write(dir.file("d")), 16, 0.2);
  const int vocab = 2048;
  for (Split split : {Split::Train, Split::Valid}) {
    auto a = make_data_loader(cfg, split, vocab, 3, 16, 42);
    auto same = make_data_loader(cfg, split, vocab, 3, 16, 42);
    const auto first = take(*a, 4);
    const auto again = take(*same, 4);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(first[i].inputs, again[i].inputs);
    if (split == Split::Train) {
      auto other = make_data_loader(cfg, split, vocab, 3, 16, 43);
      EXPECT_NE(take(*other, 1)[0].inputs, first[0].inputs);
    }
    // Resume: a fresh loader restored to a's state continues as a does.
    const DataLoaderState saved = a->state();
    const auto expected = take(*a, 5);
    auto b = make_data_loader(cfg, split, vocab, 3, 16, 42);
    b->restore(saved);
    const auto got = take(*b, 5);
    for (int i = 0; i < 5; ++i) {
      EXPECT_EQ(got[i].inputs, expected[i].inputs);
      EXPECT_EQ(got[i].targets, expected[i].targets);
    }
    // DP: rank r's rows are rows [r*B, (r+1)*B) of the single-rank global batch.
    const int dp = 3, B = 2;
    auto global = make_data_loader(cfg, split, vocab, B * dp, 16, 7);
    std::vector<std::unique_ptr<DataLoader>> ranks;
    for (int r = 0; r < dp; ++r) ranks.push_back(make_data_loader(cfg, split, vocab, B, 16, 7, r, dp));
    for (int step = 0; step < 3; ++step) {
      Batch g;
      global->next(g);
      for (int r = 0; r < dp; ++r) {
        Batch mine;
        ranks[static_cast<size_t>(r)]->next(mine);
        for (int i = 0; i < B; ++i)
          EXPECT_TRUE(std::equal(mine.input_row(i), mine.input_row(i) + 16, g.input_row(r * B + i)))
              << split_name(split) << " step " << step << " rank " << r << " row " << i;
      }
    }
  }
}

TEST(MegatronLoader, BlendScheduleHitsTheWeightsInEveryPrefix) {
  // 0.7 * 4096 = 2867.2 and 0.3 * 4096 = 1228.8: floors 2867 + 1228, the
  // spare slot to the larger remainder (0.8).
  const std::vector<int> s = blend_schedule({0.7, 0.3});
  ASSERT_EQ(s.size(), 4096u);
  EXPECT_EQ(std::count(s.begin(), s.end(), 0), 2867);
  EXPECT_EQ(std::count(s.begin(), s.end(), 1), 1229);
  // Greedy interleaving: after every prefix of r slots each dataset's count
  // is within one of its target n_k r / P (not all of one, then the other).
  const std::vector<double> w = {5, 3, 1, 1};
  const std::vector<int> s4 = blend_schedule(w);
  std::vector<int64_t> n(4, 0), c(4, 0);
  for (int k : s4) ++n[static_cast<size_t>(k)];
  EXPECT_EQ(n, (std::vector<int64_t>{2048, 1229, 410, 409}));  // 2048, 1228.8, 409.6, 409.6
  for (size_t r = 0; r < s4.size(); ++r) {
    ++c[static_cast<size_t>(s4[r])];
    for (size_t k = 0; k < 4; ++k)
      ASSERT_LE(std::abs(static_cast<double>(c[k]) - static_cast<double>(n[k]) * static_cast<double>(r + 1) / 4096.0),
                1.0)
          << "dataset " << k << " after " << r + 1 << " slots";
  }
  // A tiny weight still gets a slot.
  const std::vector<int> tiny = blend_schedule({1.0, 1e-9});
  EXPECT_EQ(std::count(tiny.begin(), tiny.end(), 1), 1);
}

TEST(MegatronLoader, BlendServesEachDatasetItsShareDeterministically) {
  TempDir dir;
  Pair a, b;
  a.sequences = make_docs(20, 20, 40, 0, 3);     // ids below 1000
  b.sequences = make_docs(20, 20, 40, 1000, 4);  // ids from 1000
  DataConfig cfg;
  cfg.kind = "megatron";
  cfg.seq_len = 8;
  cfg.valid_fraction = 0.2;
  cfg.blend = {"0.7", a.write(dir.file("a")), "0.3", b.write(dir.file("b"))};
  const int vocab = 4096, eod = vocab - 1;
  const std::vector<int> schedule = blend_schedule({0.7, 0.3});
  // Each sequence comes from the dataset the schedule names: all its ids
  // (EOD aside) on that dataset's side of 1000.
  for (Split split : {Split::Train, Split::Valid}) {
    auto loader = make_data_loader(cfg, split, vocab, 64, 8, 9);
    int64_t from_a = 0;
    uint64_t index = 0;
    for (const Batch& batch : take(*loader, 128)) {  // 2 periods
      for (int i = 0; i < batch.B; ++i, ++index) {
        const bool want_a = schedule[index % 4096] == 0;
        from_a += want_a;
        for (int t = 0; t < 8; ++t) {
          const int32_t id = batch.input_row(i)[t];
          if (id != eod) {
            ASSERT_EQ(id < 1000, want_a) << split_name(split) << " sequence " << index;
          }
        }
      }
    }
    EXPECT_EQ(from_a, 2 * 2867);
    // Resume in the middle of a period, with another batch size.
    auto first = make_data_loader(cfg, split, vocab, 5, 8, 9);
    take(*first, 7);
    const DataLoaderState st = first->state();
    const auto expected = take(*first, 3);
    auto second = make_data_loader(cfg, split, vocab, 5, 8, 9);
    second->restore(st);
    const auto got = take(*second, 3);
    for (int i = 0; i < 3; ++i) EXPECT_EQ(got[i].inputs, expected[i].inputs);
  }
  // Valid: dataset k's j-th sequence is its j-th window.
  auto valid = make_data_loader(cfg, Split::Valid, vocab, 1, 8, 9);
  const auto stream_b = expected_stream(b.sequences, 16, 4, eod);
  const int64_t W_b = static_cast<int64_t>(stream_b.size() - 1) / 8;
  int64_t j_b = 0;
  for (uint64_t i = 0; i < 40; ++i) {
    Batch batch;
    valid->next(batch);
    if (schedule[i] != 1) continue;
    EXPECT_EQ(window_start(batch, 0, stream_b), j_b % W_b * 8) << "sequence " << i;
    ++j_b;
  }
  EXPECT_GT(j_b, 5);
}

TEST(MegatronLoader, BlendAndSplitSettingsAreCheckedWithClearMessages) {
  TempDir dir;
  DataConfig cfg;
  cfg.kind = "megatron";
  expect_error<ConfigError>([&] { megatron_blend(cfg); }, {"data.path", "data.blend"});
  cfg.blend = {"0.5", "a", "0.5"};
  expect_error<ConfigError>([&] { megatron_blend(cfg); }, {"data.blend has 3 entries", "pairs"});
  cfg.blend = {"heavy", "a"};
  expect_error<ConfigError>([&] { megatron_blend(cfg); }, {"data.blend[0] = 'heavy'", "positive weight"});
  cfg.blend = {"-1", "a"};
  expect_error<ConfigError>([&] { megatron_blend(cfg); }, {"data.blend[0] = '-1'"});
  cfg.blend = {"1", "a"};
  cfg.path = "b";
  expect_error<ConfigError>([&] { megatron_blend(cfg); }, {"data.path 'b' and data.blend are both set"});
  cfg.path.clear();
  cfg.blend = {"2", "x", "1", "y"};
  const auto parts = megatron_blend(cfg);
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_EQ(parts[1].prefix, "y");
  EXPECT_EQ(parts[1].weight, 1.0);
  EXPECT_EQ(parts[1].what, "data.blend[3]");

  Pair one;
  one.sequences = {{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}};
  const std::string single = one.write(dir.file("single"));
  expect_error<ConfigError>([&] { make_data_loader(megatron_config(single, 4), Split::Train, 16, 1, 4, 1); },
                            {"single", "1 document", "cannot be split"});
  Pair few;
  few.sequences = {{1, 2, 3}, {4, 5}};
  const std::string small = few.write(dir.file("small"));
  expect_error<ConfigError>([&] { make_data_loader(megatron_config(small, 8), Split::Valid, 16, 1, 8, 1); },
                            {"valid split", "small", "data.seq_len = 8 needs at least 9"});
  DataConfig eod = megatron_config(small, 2);
  eod.eod_token = 16;
  expect_error<ConfigError>([&] { make_data_loader(eod, Split::Train, 16, 1, 2, 1); },
                            {"data.eod_token = 16", "model.vocab_size = 16"});
}
