// Checkpoints on disk: the manifest and arrival records, XXH3, RunState
// staging, and the store's publish rule driven through CheckpointSaver, then
// every way a checkpoint directory can go wrong (damaged files, retention
// next to readers, stale pending saves, a second writer). Expected values are
// computed here from the format's definition, not read back from the code.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "runtime/checkpoint/checksum.h"
#include "runtime/checkpoint/manifest.h"
#include "runtime/checkpoint/reader.h"
#include "runtime/checkpoint/run_state.h"
#include "runtime/checkpoint/saver.h"
#include "runtime/checkpoint/store.h"
#include "runtime/error.h"
#include "runtime/io/input_file.h"
#include "runtime/io/safetensors.h"
#include "temp_dir.h"

using namespace lintrain;
namespace fs = std::filesystem;

namespace {

using test::TempDir;
using Names = std::vector<std::string>;

// `text` contains `part`; says both when not (each argument evaluated once).
testing::AssertionResult has(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return testing::AssertionSuccess();
  return testing::AssertionFailure() << "'" << part << "' not in: " << text;
}
#define EXPECT_HAS(text, part) EXPECT_TRUE(has(text, part))

// The message of the E that f() throws ("" and a failure when it does not).
template <typename E, typename F>
std::string message_of(F&& f) {
  try { f(); } catch (const E& e) { return e.what(); }
  ADD_FAILURE() << "nothing was thrown";
  return "";
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
void write_all(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}
std::string replace_once(std::string s, const std::string& from, const std::string& to) {
  const size_t at = s.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return at == std::string::npos ? s : s.replace(at, from.size(), to);
}
std::vector<int64_t> steps_of(const CheckpointStore& store) {
  std::vector<int64_t> out;
  for (const CheckpointInfo& c : store.list()) out.push_back(c.step);
  return out;
}

// A small run: two model tensors, optimizer state and counters. Values are a function of `step` so every checkpoint differs; all are
// multiples of 1/4, exact in float.
struct TestState {
  std::vector<float> w = std::vector<float>(6), b = std::vector<float>(3), m = std::vector<float>(6);
  int64_t step = 0;
  uint64_t tokens = 0;
  RunState rs;
  TestState() {
    rs.add("model", "w", DType::F32, {2, 3}, w.data());
    rs.add("model", "b", DType::F32, {3}, b.data());
    rs.add("trainer", "adam.m", DType::F32, {2, 3}, m.data());
    rs.add_scalar("trainer", "step", &step);
    rs.add_scalar("trainer", "tokens", &tokens);
    rs.set_metadata("trainer", "config", "model: tiny");
  }
  explicit TestState(int64_t s) : TestState() { set(s); }
  TestState(const TestState&) = delete;
  void set(int64_t s) {
    const float f = static_cast<float>(s);
    for (size_t i = 0; i < w.size(); ++i) w[i] = f + 0.25f * static_cast<float>(i);
    for (size_t i = 0; i < b.size(); ++i) b[i] = -f - 0.5f * static_cast<float>(i);
    for (size_t i = 0; i < m.size(); ++i) m[i] = 0.75f * (10 * f + static_cast<float>(i));
    step = s;
    tokens = static_cast<uint64_t>(s) * 4096;
  }
  bool holds(int64_t s) const {
    const TestState ref(s);
    return w == ref.w && b == ref.b && m == ref.m && step == ref.step && tokens == ref.tokens;
  }
};
// 6 + 3 + 6 floats of 4 bytes and two 8-byte counters.
constexpr uint64_t kStateBytes = (6 + 3 + 6) * 4 + 2 * 8;

// One rank of a world of `world` (data-parallel), no retention unless `keep`.
SaverOptions options(bool async, int keep = 0, int rank = 0, int world = 1, double timeout_s = 60) {
  return SaverOptions{new_job_id(), rank, world, world, 1, async, timeout_s, keep};
}
// Saves steps first..last synchronously into `dir`.
void save_steps(const std::string& dir, int64_t first, int64_t last) {
  TestState ts;
  CheckpointSaver saver(options(false), directory_target(dir, 0));
  for (int64_t s = first; s <= last; ++s) {
    ts.set(s);
    saver.save(s, ts.rs);
  }
  for (const SaveReport& r : saver.take_reports()) ASSERT_TRUE(r.ok) << r.error;
}

// Ranks 0 and 1 of one job save step 7 of their states into `dir`; rank 0's report.
SaveReport save_two_ranks(const std::string& dir, const TestState& s0, const TestState& s1) {
  SaverOptions o0 = options(true, 0, 0, 2), o1 = options(true, 0, 1, 2);
  o1.job = o0.job;
  CheckpointSaver r0(o0, directory_target(dir, 0)), r1(o1, directory_target(dir, 1));
  r1.save(7, s1.rs);
  r0.save(7, s0.rs);
  r1.finish();
  r0.finish();
  std::vector<SaveReport> rep = r0.take_reports();
  EXPECT_EQ(rep.size(), 1u);
  return rep.empty() ? SaveReport{} : rep[0];
}

Manifest sample_manifest() {
  // created_unix is an integer + 1/4: exact in a double, so == below is fair.
  return Manifest{1, 100, "9f2c0a1b2c3d4e5f", 1764712345.25, 2, 2, 1,
                  {{"model.safetensors", 3637528, 0x5d2b0e7c9a41f3aaULL},
                   {"trainer.safetensors", 1234, 0x0123456789abcdefULL}},
                  {{0, 0xfeedfacecafebeefULL, {"model.safetensors", "trainer.safetensors"}},
                   {1, 0xfeedfacecafebeefULL, {}}}};
}

TEST(CheckpointManifest, RoundTrips) {
  const Manifest m = sample_manifest();
  const Manifest p = parse_manifest(manifest_to_json(m), "test");
  EXPECT_EQ(std::make_tuple(p.version, p.step, p.job, p.created_unix, p.world_size, p.data, p.sequence),
            std::make_tuple(1, int64_t{100}, m.job, 1764712345.25, 2, 2, 1));
  ASSERT_EQ(p.files.size(), 2u);
  for (size_t i = 0; i < 2; ++i)
    EXPECT_EQ(std::tie(p.files[i].name, p.files[i].bytes, p.files[i].xxh3),
              std::tie(m.files[i].name, m.files[i].bytes, m.files[i].xxh3));
  EXPECT_EQ(p.bytes(), 3637528u + 1234u);
  ASSERT_EQ(p.ranks.size(), 2u);
  EXPECT_EQ(p.ranks[0].files, m.ranks[0].files);
  EXPECT_TRUE(p.ranks[1].files.empty());
  EXPECT_EQ(p.ranks[1].replica_xxh3, 0xfeedfacecafebeefULL);
}

// Checkpoints written before the JSON went through nlohmann-json keep
// loading: these are the bytes the earlier writer produced for
// sample_manifest() and for ArrivalRoundTrips' record.
TEST(CheckpointManifest, ReadsTheRecordsEarlierVersionsWrote) {
  const char* manifest = R"({
  "format": "lintrain-checkpoint",
  "version": 1,
  "step": 100,
  "job": "9f2c0a1b2c3d4e5f",
  "created_unix": 1764712345.25,
  "world_size": 2,
  "layout": {"data": 2, "sequence": 1},
  "files": [
    {"name": "model.safetensors", "bytes": 3637528, "xxh3_64": "5d2b0e7c9a41f3aa"},
    {"name": "trainer.safetensors", "bytes": 1234, "xxh3_64": "0123456789abcdef"}
  ],
  "ranks": [
    {"rank": 0, "replica_xxh3_64": "feedfacecafebeef", "files": ["model.safetensors", "trainer.safetensors"]},
    {"rank": 1, "replica_xxh3_64": "feedfacecafebeef", "files": []}
  ]
}
)";
  const Manifest m = sample_manifest(), p = parse_manifest(manifest, "old");
  EXPECT_EQ(std::make_tuple(p.version, p.step, p.job, p.created_unix, p.world_size, p.data, p.sequence),
            std::make_tuple(m.version, m.step, m.job, m.created_unix, m.world_size, m.data, m.sequence));
  ASSERT_EQ(p.files.size(), 2u);
  EXPECT_EQ(std::tie(p.files[1].name, p.files[1].bytes, p.files[1].xxh3),
            std::tie(m.files[1].name, m.files[1].bytes, m.files[1].xxh3));
  ASSERT_EQ(p.ranks.size(), 2u);
  EXPECT_EQ(p.ranks[0].files, m.ranks[0].files);
  EXPECT_EQ(p.ranks[1].replica_xxh3, m.ranks[1].replica_xxh3);

  const char* arrival = R"({
  "job": "00ff00ff00ff00ff",
  "step": 123456789012,
  "world_size": 4,
  "rank": 3,
  "layout": {"data": 2, "sequence": 2},
  "replica_xxh3_64": "deadbeefcafef00d",
  "keep": 5,
  "files": [
    {"name": "rank-00003.safetensors", "bytes": 77, "xxh3_64": "1122334455667788"}
  ]
}
)";
  const Arrival a = parse_arrival(arrival, "old");
  EXPECT_EQ(std::tie(a.job, a.step, a.world_size, a.rank, a.data, a.sequence, a.replica_xxh3, a.keep),
            std::make_tuple(std::string("00ff00ff00ff00ff"), int64_t{123456789012}, 4, 3, 2, 2,
                            0xdeadbeefcafef00dULL, 5));
  ASSERT_EQ(a.files.size(), 1u);
  EXPECT_EQ(std::tie(a.files[0].name, a.files[0].bytes, a.files[0].xxh3),
            std::make_tuple(std::string("rank-00003.safetensors"), uint64_t{77}, 0x1122334455667788ULL));
}

TEST(CheckpointManifest, RefusesWhatIsNotOne) {
  const std::string good = manifest_to_json(sample_manifest());
  auto refuses = [](const std::string& text, const std::string& says) {
    const std::string msg = message_of<IoError>([&] { parse_manifest(text, "ckpt/MANIFEST.json"); });
    EXPECT_HAS(msg, "ckpt/MANIFEST.json");
    EXPECT_HAS(msg, says);
  };
  auto changed = [](const std::function<void(Manifest&)>& f) {
    Manifest m = sample_manifest();
    f(m);
    return manifest_to_json(m);
  };
  const std::string model = "\"name\": \"model.safetensors\"";
  refuses(replace_once(good, "lintrain-checkpoint", "other-checkpoint"), "format");
  refuses(changed([](Manifest& m) { m.version = 2; }), "version 2");
  refuses(replace_once(good, model, "\"name\": \"a/b.safetensors\""), "a/b.safetensors");
  refuses(replace_once(good, model, "\"name\": \"..\""), "'..'");
  refuses(changed([](Manifest& m) { m.files[1].name = m.files[0].name; }), "listed twice");
  refuses(changed([](Manifest& m) { m.ranks.pop_back(); }), "rank 1 of 2 is missing");
  refuses(changed([](Manifest& m) { m.ranks[1].rank = 0; }), "rank 0 is listed twice");
  refuses(changed([](Manifest& m) { m.data = 3; }), "is not world_size 2");  // 3 x 1 != 2
  refuses(replace_once(good, "0123456789abcdef", "0123456789abcdeg"), "16 hex digits");
  // The JSON itself is read strictly (runtime/io/json.h): a second "step"
  // would otherwise silently win.
  refuses(replace_once(good, "\"step\": 100,", "\"step\": 100, \"step\": 7,"), "duplicate key \"step\"");
  refuses(good + "{}", "not valid JSON");
}

TEST(CheckpointManifest, RefusesStepsBeyondTheRange) {
  // 2^63 and 2^64 - 1 do not fit an int64_t; 2^53 + 1 is the first step past kMaxStep.
  for (const char* step : {"9223372036854775808", "18446744073709551615", "9007199254740993"}) {
    const std::string text = replace_once(manifest_to_json(sample_manifest()), "\"step\": 100", str_cat("\"step\": ", step));
    EXPECT_HAS(message_of<IoError>([&] { parse_manifest(text, "m"); }), "out of range") << step;
    const std::string arrival = replace_once(arrival_to_json(Arrival{"00ff00ff00ff00ff", 1, 1, 0, 1, 1, 0, 0, {}}), "\"step\": 1,",
                                             str_cat("\"step\": ", step, ","));
    EXPECT_HAS(message_of<IoError>([&] { parse_arrival(arrival, "a"); }), "out of range") << step;
  }
}

TEST(CheckpointManifest, ArrivalRoundTrips) {
  // Every field differs from its default, so a dropped field shows.
  const Arrival a{"00ff00ff00ff00ff", 123456789012, 4, 3, 2, 2, 0xdeadbeefcafef00dULL, 5,
                  {{"rank-00003.safetensors", 77, 0x1122334455667788ULL}}};
  const Arrival p = parse_arrival(arrival_to_json(a), "arrival");
  EXPECT_EQ(std::tie(p.job, p.step, p.world_size, p.rank, p.data, p.sequence, p.replica_xxh3, p.keep),
            std::tie(a.job, a.step, a.world_size, a.rank, a.data, a.sequence, a.replica_xxh3, a.keep));
  ASSERT_EQ(p.files.size(), 1u);
  EXPECT_EQ(std::tie(p.files[0].name, p.files[0].bytes, p.files[0].xxh3),
            std::tie(a.files[0].name, a.files[0].bytes, a.files[0].xxh3));
}

TEST(CheckpointManifest, StepDirNamesAndFileNames) {
  int64_t s = -1;
  for (const int64_t step : {int64_t{100}, int64_t{123456789012}}) {  // the second has more than 8 digits
    EXPECT_EQ(step_dir_name(step), step == 100 ? "step-00000100" : "step-123456789012");
    EXPECT_TRUE(parse_step_dir_name(step_dir_name(step), &s) && s == step) << step;
  }
  // "step-000000100": one spelling per step, so no extra leading zero.
  for (const char* bad : {"step-100", "step-0000010a", "step-00000100x", "step-000000100", "latest"})
    EXPECT_FALSE(parse_step_dir_name(bad, &s)) << bad;

  for (const std::string& bad : Names{"", "..", "a/b", ".hidden", "MANIFEST.json", std::string(129, 'a')})
    EXPECT_FALSE(valid_file_name(bad)) << bad;
  for (const std::string& good : Names{"model.safetensors", "rank-00003.safetensors", std::string(128, 'a')})
    EXPECT_TRUE(valid_file_name(good)) << good;  // 128 characters: the limit itself
}

TEST(CheckpointChecksum, StreamingMatchesOneShotAndKnownVectors) {
  // Python's xxhash.xxh3_64_intdigest(b"abc") and of b"" (XXH3 reference vectors).
  EXPECT_EQ(xxh3_of("abc", 3), 0x78af5f94892f3950ULL);
  EXPECT_EQ(xxh3_of("", 0), 0x2d06800538d394c2ULL);

  // 10000 bytes covers XXH3's short, medium and long (striped, > 240 B) paths.
  std::vector<uint8_t> bytes(10000);
  uint32_t x = 12345;
  for (uint8_t& v : bytes) v = static_cast<uint8_t>((x = x * 1664525u + 1013904223u) >> 24);
  Xxh3 h;
  size_t at = 0;
  for (size_t n : {0, 1, 7, 300}) {
    h.update(bytes.data() + at, n);
    at += n;
  }
  EXPECT_EQ(h.digest(), xxh3_of(bytes.data(), at));  // digest() midway, then go on
  h.update(bytes.data() + at, bytes.size() - at);
  EXPECT_EQ(h.bytes(), bytes.size());
  EXPECT_EQ(h.digest(), xxh3_of(bytes.data(), bytes.size()));

  EXPECT_EQ(xxh3_hex(0x78af5f94892f3950ULL), "78af5f94892f3950");
  EXPECT_EQ(xxh3_hex(0), "0000000000000000");  // always 16 digits
  uint64_t v = 0;
  EXPECT_TRUE(parse_xxh3_hex(xxh3_hex(0xfedcba9876543210ULL), &v) && v == 0xfedcba9876543210ULL);
  for (const char* bad : {"", "78af5f94892f395", "78af5f94892f39500", "78af5f94892f395g"})
    EXPECT_FALSE(parse_xxh3_hex(bad, &v)) << bad;
}

TEST(CheckpointRunState, NamesDigestAndStaging) {
  TestState ts(3);
  float other = 0;
  EXPECT_THROW(ts.rs.add("model", "w", DType::F32, {}, &other), Error);
  ts.rs.add("extra", "w", DType::F32, {}, &other);  // the same name in another part is fine
  EXPECT_EQ(ts.rs.parts(), (Names{"model", "trainer", "extra"}));

  // The digest is XXH3 over the entries' bytes in order.
  std::string all;
  for (const StateEntry& e : ts.rs.entries()) all.append(static_cast<const char*>(e.data), e.nbytes());
  const uint64_t before = ts.rs.digest();
  EXPECT_EQ(before, xxh3_of(all.data(), all.size()));
  reinterpret_cast<uint8_t*>(ts.m.data())[5] ^= 1;
  EXPECT_NE(ts.rs.digest(), before);
  reinterpret_cast<uint8_t*>(ts.m.data())[5] ^= 1;
  EXPECT_EQ(ts.rs.digest(), before);

  StagedState staged;
  staged.stage(ts.rs);
  ASSERT_TRUE(staged.staged());
  EXPECT_EQ(staged.nbytes(), kStateBytes + 4);  // + the extra float
  EXPECT_EQ(staged.digest(), before);
  ASSERT_EQ(staged.files().size(), 3u);  // one per part, in part order
  for (const StagedFile& sf : staged.files())  // promised for direct I/O
    EXPECT_EQ(reinterpret_cast<uintptr_t>(sf.data) % 4096, 0u) << sf.name;
  // The staged bytes are a valid safetensors file of the state.
  const StagedFile& tf = staged.files()[1];
  EXPECT_EQ(tf.name, "trainer.safetensors");
  const SafeTensorFile f = safetensors_from_bytes(tf.name, std::vector<uint8_t>(tf.data, tf.data + tf.size));
  EXPECT_EQ(f.tensors().size(), 3u);
  EXPECT_EQ(f.get("adam.m").shape, (Shape{2, 3}));
  EXPECT_EQ(std::memcmp(f.get("adam.m").data, ts.m.data(), 6 * sizeof(float)), 0);
  EXPECT_EQ(*static_cast<const int64_t*>(f.get("step").data), 3);
  EXPECT_EQ(*static_cast<const uint64_t*>(f.get("tokens").data), 3u * 4096);
  EXPECT_EQ(f.metadata().at("config"), "model: tiny");

  // Non-finite floats: refused, naming the tensor and the index.
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    ts.b[2] = bad;
    const std::string msg = message_of<Error>([&] { staged.stage(ts.rs); });
    EXPECT_HAS(msg, "'b'");
    EXPECT_HAS(msg, "index 2");
    EXPECT_FALSE(staged.staged());
  }
}

// Saving with async off (save() returns when done) and on (it returns at once).
class CheckpointSaverModes : public testing::TestWithParam<bool> {};
INSTANTIATE_TEST_SUITE_P(SyncAndAsync, CheckpointSaverModes, testing::Bool());

TEST_P(CheckpointSaverModes, SavesKeepsTwoAndRestores) {
  const bool async = GetParam();
  TempDir tmp("ckpt");
  const std::string dir = tmp.str();
  TestState ts;
  {
    CheckpointSaver saver(options(async, 2), directory_target(dir, 0));
    for (int64_t s = 1; s <= 4; ++s) {
      ts.set(s);
      saver.save(s, ts.rs);
      saver.fence();  // from here the save in flight has its own copy,
      ts.set(99);     // and training may move on
    }
    ts.w[0] = std::nanf("");  // a non-finite state is not saved: the report names the tensor
    saver.save(5, ts.rs);
    saver.finish();
    const std::vector<SaveReport> reports = saver.take_reports();
    ASSERT_EQ(reports.size(), 5u);
    CheckpointStore store(dir);
    for (int64_t s = 1; s <= 4; ++s) {
      const SaveReport& r = reports[static_cast<size_t>(s - 1)];
      EXPECT_TRUE(r.ok) << r.error;
      EXPECT_EQ(std::make_tuple(r.step, r.fatal, r.bytes, r.where), std::make_tuple(s, false, kStateBytes, store.path_of(s)));
    }
    EXPECT_FALSE(reports[4].ok);
    EXPECT_HAS(reports[4].error, "model tensor 'w'");
  }
  EXPECT_EQ(tmp.listing(), (Names{"latest", "step-00000003", "step-00000004"}));
  EXPECT_EQ(read_all(dir + "/latest"), "step-00000004\n");

  for (int64_t s : {3, 4}) {
    auto source = directory_source(dir);
    const OpenedCheckpoint c = open_checkpoint(*source, s);
    EXPECT_EQ(c.manifest.world_size, 1);
    EXPECT_EQ(c.part("trainer").metadata().at("config"), "model: tiny");
    TestState fresh;  // zeros
    restore_run_state(c, fresh.rs);
    EXPECT_TRUE(fresh.holds(s)) << "step " << s;
  }
  // A user path: the directory means its newest; a folder (trailing slash too) means itself.
  EXPECT_EQ(open_checkpoint_path(dir, nullptr).manifest.step, 4);
  EXPECT_EQ(open_checkpoint_path(dir + "/step-00000003/", nullptr).manifest.step, 3);
}

// RunState::add allows null data for a zero-length entry (an empty queue,
// say); such an entry must save and restore like any other. First saved from
// real memory and restored into none, then saved from none: each copy alone.
TEST(CheckpointSaver, ZeroLengthEntryWithoutMemoryRoundTrips) {
  for (const bool null_when_saving : {false, true}) {
    SCOPED_TRACE(null_when_saving);
    TempDir tmp("ckpt");
    int64_t step = 11, back = 0;
    int32_t some[1] = {0};
    RunState saved, restored;
    saved.add_scalar("trainer", "step", &step);
    saved.add("trainer", "queue", DType::I32, {0}, null_when_saving ? nullptr : some);
    restored.add_scalar("trainer", "step", &back);
    restored.add("trainer", "queue", DType::I32, {0}, nullptr);
    CheckpointSaver saver(options(false), directory_target(tmp.str(), 0));
    saver.save(1, saved);
    const std::vector<SaveReport> rep = saver.take_reports();
    ASSERT_EQ(rep.size(), 1u);
    ASSERT_TRUE(rep[0].ok) << rep[0].error;
    auto source = directory_source(tmp.str());
    const OpenedCheckpoint c = open_checkpoint(*source, 1);
    EXPECT_EQ(c.part("trainer").get("queue").shape, (Shape{0}));
    restore_run_state(c, restored);
    EXPECT_EQ(back, 11);
  }
}

TEST(CheckpointSaver, TwoRanksPublishOnceBothArrive) {
  TempDir tmp("ckpt");
  TestState s0(7), s1(7);
  const SaveReport r = save_two_ranks(tmp.str(), s0, s1);
  ASSERT_TRUE(r.ok) << r.error;
  const Manifest m = parse_manifest(read_all(tmp.file("step-00000007/MANIFEST.json")), "m");
  EXPECT_EQ(std::make_tuple(m.world_size, m.data, m.sequence), std::make_tuple(2, 2, 1));
  ASSERT_EQ(m.ranks.size(), 2u);
  EXPECT_EQ(m.ranks[0].files, (Names{"model.safetensors", "trainer.safetensors"}));
  EXPECT_TRUE(m.ranks[1].files.empty());
  EXPECT_EQ(m.ranks[0].replica_xxh3, s0.rs.digest());
  EXPECT_EQ(m.ranks[1].replica_xxh3, s0.rs.digest());
  EXPECT_EQ(tmp.listing(), (Names{"latest", "step-00000007"}));  // arrival records gone with the pending folder
}

TEST(CheckpointSaver, DivergedReplicasAreFatalAndUnpublished) {
  TempDir tmp("ckpt");
  TestState s0(7), s1(7);
  s1.m[4] += 0.25f;  // one optimizer value differs on rank 1
  const SaveReport r = save_two_ranks(tmp.str(), s0, s1);
  EXPECT_TRUE(!r.ok && r.fatal);
  EXPECT_HAS(r.error, "diverged");
  EXPECT_TRUE(tmp.listing().empty());  // no step folder, no latest, no pending folder
}

TEST(CheckpointSaver, MissingRankTimesOut) {
  TempDir tmp("ckpt");
  TestState s0(7);
  CheckpointSaver r0(options(false, 0, 0, 2, 0.3), directory_target(tmp.str(), 0));
  r0.save(7, s0.rs);  // rank 1 never does
  const std::vector<SaveReport> rep = r0.take_reports();
  ASSERT_EQ(rep.size(), 1u);
  EXPECT_FALSE(rep[0].ok || rep[0].fatal);
  EXPECT_HAS(rep[0].error, "timed out");
  EXPECT_HAS(rep[0].error, "1 arrived");
  EXPECT_TRUE(tmp.listing().empty());  // the pending folder is gone
}

// A waiting save (here for a rank that never arrives, timeout 600 s) whose
// give_up answers true ends at once, abandoned, its error saying why.
TEST(CheckpointSaver, GiveUpCutsAWaitingSaveShort) {
  TempDir tmp("ckpt");
  TestState s0(7);
  CheckpointSaver r0(options(false, 0, 0, 2, 600), directory_target(tmp.str(), 0));
  const auto t0 = std::chrono::steady_clock::now();
  r0.save(7, s0.rs, /*wait=*/true,
          [&] { return std::chrono::steady_clock::now() - t0 > std::chrono::milliseconds(200); });
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(took, 10.0);  // far below the 600 s timeout; generous for a loaded machine
  const std::vector<SaveReport> rep = r0.take_reports();
  ASSERT_EQ(rep.size(), 1u);
  EXPECT_FALSE(rep[0].ok);
  EXPECT_TRUE(rep[0].abandoned);
  EXPECT_HAS(rep[0].error, CheckpointSaver::kGiveUpWhy);
  EXPECT_TRUE(tmp.listing().empty());  // the pending folder is gone
}

TEST(CheckpointReader, FlippedByteFailsChecksumAndFallsBack) {
  TempDir tmp("ckpt");
  save_steps(tmp.str(), 1, 2);
  const std::string path = tmp.file("step-00000002/trainer.safetensors");
  std::string bytes = read_all(path);
  bytes[bytes.size() / 2] = static_cast<char>(bytes[bytes.size() / 2] ^ 0x10);
  write_all(path, bytes);

  auto source = directory_source(tmp.str());
  const std::string msg = message_of<IoError>([&] { open_checkpoint(*source, 2); });
  EXPECT_HAS(msg, "checksum");
  EXPECT_HAS(msg, "trainer.safetensors");
  Names warnings;
  const auto c = open_newest(*source, [&](const std::string& w) { warnings.push_back(w); });
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->manifest.step, 1);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_HAS(warnings[0], "step-00000002");
  EXPECT_HAS(warnings[0], "checksum");
  EXPECT_HAS(warnings[0], "step-00000001");
}

TEST(CheckpointReader, TruncatedOrUnmanifestedIsIncomplete) {
  for (const bool truncate : {true, false}) {
    TempDir tmp("ckpt");
    save_steps(tmp.str(), 1, 2);
    const std::string model = tmp.file("step-00000002/model.safetensors");
    if (truncate) fs::resize_file(model, fs::file_size(model) - 1);
    else fs::remove(tmp.file("step-00000002/MANIFEST.json"));
    const CheckpointInfo info = inspect_checkpoint(tmp.file("step-00000002"));
    EXPECT_FALSE(info.complete);
    EXPECT_HAS(info.problem, truncate ? "model.safetensors" : "MANIFEST.json");
    auto source = directory_source(tmp.str());
    Names warnings;
    EXPECT_EQ(open_newest(*source, [&](const std::string& w) { warnings.push_back(w); })->manifest.step, 1);
    ASSERT_EQ(warnings.size(), 1u);
    EXPECT_HAS(warnings[0], "step-00000002");
  }
}

TEST(CheckpointStore, RetentionSparesLatestAndReadLocked) {
  for (const bool by_latest : {true, false}) {
    TempDir tmp("ckpt");
    save_steps(tmp.str(), 1, 3);
    // A run that went back to step 1, say; or a reader of step 1.
    if (by_latest) write_all(tmp.file("latest"), "step-00000001\n");
    CheckpointStore store(tmp.str());
    {
      std::optional<ReadLock> lock;
      if (!by_latest) lock.emplace(store.path_of(1));
      store.apply_retention(1);
      // By latest: steps 2 and 3 are of the history the run went back from,
      // neither counted nor deleted.
      EXPECT_EQ(steps_of(store), (by_latest ? std::vector<int64_t>{1, 2, 3} : std::vector<int64_t>{1, 3})) << by_latest;
    }
    store.apply_retention(1);  // the lock is gone: step 1 goes too, unless latest names it
    EXPECT_EQ(steps_of(store), (by_latest ? std::vector<int64_t>{1, 2, 3} : std::vector<int64_t>{3})) << by_latest;
  }
}

// A run resumed from step 2 because steps 3 and 4 did not verify (or one
// started over with resume: none) must not delete them while its own saves
// are older: they may be the only copy of a longer run, repairable. They are
// not counted against checkpoint.keep either.
TEST(CheckpointStore, RetentionKeepsCheckpointsAfterLatestAndCountsOnlyUpToIt) {
  TempDir tmp("ckpt");
  save_steps(tmp.str(), 1, 5);
  write_all(tmp.file("latest"), "step-00000003\n");
  CheckpointStore store(tmp.str());
  store.apply_retention(2);
  EXPECT_EQ(steps_of(store), (std::vector<int64_t>{2, 3, 4, 5}));
}

TEST(CheckpointReader, EveryCheckpointDamagedIsRefusedNamingEach) {
  TempDir tmp("ckpt");
  save_steps(tmp.str(), 1, 2);
  for (const char* step : {"step-00000001", "step-00000002"}) {
    const std::string path = tmp.file(std::string(step) + "/trainer.safetensors");
    std::string bytes = read_all(path);
    bytes[bytes.size() - 10] = static_cast<char>(bytes[bytes.size() - 10] ^ 0x01);
    write_all(path, bytes);
  }
  auto source = directory_source(tmp.str());
  Names warnings;
  try {
    open_newest(*source, [&](const std::string& w) { warnings.push_back(w); });
    ADD_FAILURE() << "every checkpoint is damaged, yet open_newest did not refuse";
  } catch (const NoUsableCheckpointError& e) {
    const std::string msg = e.what();
    EXPECT_HAS(msg, "holds 2 checkpoints, none of which can be used");
    EXPECT_HAS(msg, tmp.file("step-00000002/trainer.safetensors"));
    EXPECT_HAS(msg, tmp.file("step-00000001/trainer.safetensors"));
    EXPECT_HAS(msg, "checksum");
    ASSERT_EQ(e.problems().size(), 2u);
    EXPECT_HAS(e.problems()[0], "step-00000002");  // newest first
  }
  EXPECT_TRUE(warnings.empty());  // the error says it all, once
  // An empty directory is not an error: a fresh run starts.
  TempDir empty("ckpt");
  EXPECT_FALSE(open_newest(*directory_source(empty.str()), nullptr).has_value());
}

// One checkpoint, damaged: the count and the verdict agree (not "holds 1
// checkpoint and it can be used: ... cannot be used").
TEST(CheckpointReader, TheOnlyCheckpointDamagedSaysItCannotBeUsed) {
  TempDir tmp("ckpt");
  fs::create_directory(tmp.file("step-00000003"));
  write_all(tmp.file("step-00000003/MANIFEST.json"), "junk\n");
  try {
    open_newest(*directory_source(tmp.str()), nullptr);
    ADD_FAILURE() << "the only checkpoint is damaged, yet open_newest did not refuse";
  } catch (const NoUsableCheckpointError& e) {
    const std::string msg = e.what();
    EXPECT_HAS(msg, "holds 1 checkpoint, which cannot be used: ");
    EXPECT_EQ(msg.find("it can be used"), std::string::npos) << msg;
  }
}

// `latest` naming a checkpoint that is not there: a warning naming it and
// what is done instead, both when an older one is used and when there is
// none (the run starts fresh and its first save rewrites `latest`).
TEST(CheckpointReader, LatestNamingAMissingCheckpointIsWarned) {
  TempDir tmp("ckpt");
  save_steps(tmp.str(), 1, 2);
  write_all(tmp.file("latest"), "step-00000099\n");
  Names warnings;
  auto opened = open_newest(*directory_source(tmp.str()), [&](const std::string& w) { warnings.push_back(w); });
  ASSERT_TRUE(opened.has_value());
  EXPECT_EQ(opened->manifest.step, 2);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_HAS(warnings[0], "`latest`");
  EXPECT_HAS(warnings[0], "step-00000099, which is not there");
  EXPECT_HAS(warnings[0], "resuming from the newest checkpoint that verifies, " + tmp.file("step-00000002"));

  TempDir empty("ckpt");
  write_all(empty.file("latest"), "step-00000099\n");
  warnings.clear();
  EXPECT_FALSE(open_newest(*directory_source(empty.str()), [&](const std::string& w) { warnings.push_back(w); }));
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_HAS(warnings[0], "step-00000099, which is not there");
  EXPECT_HAS(warnings[0], "starts from step 0");
}

// A `latest` holding no checkpoint name at all (garbage, an edit gone wrong)
// is ignored with a warning that shows what it holds, never silently.
TEST(CheckpointReader, LatestHoldingNoCheckpointNameIsWarned) {
  TempDir tmp("ckpt");
  save_steps(tmp.str(), 1, 2);
  write_all(tmp.file("latest"), "hello\tworld\n");
  Names warnings;
  auto opened = open_newest(*directory_source(tmp.str()), [&](const std::string& w) { warnings.push_back(w); });
  ASSERT_TRUE(opened.has_value());
  EXPECT_EQ(opened->manifest.step, 2);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_HAS(warnings[0], "holds 'hello?world', not a checkpoint name like step-00000012");
  EXPECT_HAS(warnings[0], "ignoring it: resuming from the newest checkpoint that verifies");
  write_all(tmp.file("latest"), "step-00000002\n");
  warnings.clear();
  ASSERT_TRUE(open_newest(*directory_source(tmp.str()), [&](const std::string& w) { warnings.push_back(w); }));
  EXPECT_TRUE(warnings.empty());
}

TEST(CheckpointStore, KnowsWhenAPathIsInsideACheckpoint) {
  TempDir tmp("ckpt");
  const std::string dir = tmp.file("ckpts");
  fs::create_directory(dir);
  save_steps(dir, 1, 1);
  const std::string canon = fs::canonical(dir).string();
  EXPECT_EQ(checkpoint_area_of(dir + "/step-00000001"), canon + "/step-00000001");
  EXPECT_EQ(checkpoint_area_of(dir + "/step-00000001/sub/new"), canon + "/step-00000001");
  EXPECT_EQ(checkpoint_area_of(dir), canon);  // `latest` names a checkpoint in it
  EXPECT_EQ(checkpoint_area_of(dir + "/exported"), canon);
  EXPECT_EQ(checkpoint_area_of(tmp.file("exported")), "");
  EXPECT_EQ(checkpoint_area_of(tmp.str()), "");
}

// Runs `f` as user nobody when this process is root (root may write
// anywhere, so permission errors need another user) and returns the message
// of the IoError it throws ("(none)" when it throws none).
std::string io_error_as_unprivileged(const std::function<void()>& f) {
  auto run = [&]() -> std::string {
    try {
      f();
    } catch (const IoError& e) {
      return e.what();
    }
    return "(none)";
  };
  if (::geteuid() != 0) return run();
  int fds[2];
  if (::pipe(fds) != 0) return "pipe failed";
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    const std::string msg = ::setgid(65534) == 0 && ::setuid(65534) == 0 ? run() : "setuid failed";
    (void)!::write(fds[1], msg.data(), msg.size());
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string out;
  char buf[512];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return out;
}

TEST(CheckpointStore, PermissionDeniedIsReportedAsSuchNotAsMissing) {
  TempDir tmp("ckpt");
  fs::permissions(tmp.str(), fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                 fs::perms::others_read | fs::perms::others_exec);
  const std::string locked = tmp.file("locked");
  fs::create_directory(locked);
  fs::permissions(locked, fs::perms::owner_read | fs::perms::owner_exec | fs::perms::group_read |
                              fs::perms::group_exec | fs::perms::others_read | fs::perms::others_exec);
  const std::string msg =
      io_error_as_unprivileged([&] { CheckpointStore store(locked + "/run/checkpoints", /*create=*/true); });
  EXPECT_HAS(msg, "permission denied");
  EXPECT_HAS(msg, locked + "/run");  // the part that could not be made
  EXPECT_HAS(msg, "checkpoint directory '" + locked + "/run/checkpoints'");
  EXPECT_EQ(msg.find("No such file"), std::string::npos) << msg;
  // An existing directory this user may not write in.
  const std::string msg2 = io_error_as_unprivileged([&] { create_output_dir(locked, "run.out_dir"); });
  EXPECT_HAS(msg2, "cannot write in run.out_dir '" + locked + "': permission denied");
}

TEST(OutputDir, CreatesParentsAndNamesWhatIsInTheWay) {
  TempDir tmp("outdir");
  create_output_dir(tmp.file("a/b/c/"), "run.out_dir");
  EXPECT_TRUE(fs::is_directory(tmp.file("a/b/c")));
  create_output_dir(tmp.file("a/b/c"), "run.out_dir");  // exists: fine
  write_all(tmp.file("file"), "x");
  EXPECT_HAS(message_of<IoError>([&] { create_output_dir(tmp.file("file/sub"), "run.out_dir"); }),
             "'" + tmp.file("file") + "' (on the path of run.out_dir '" + tmp.file("file/sub") +
                 "') is a file, not a directory");
  EXPECT_HAS(message_of<IoError>([&] { create_output_dir(tmp.file("file"), "run.out_dir"); }),
             "run.out_dir '" + tmp.file("file") + "' is a file, not a directory");
  // A dangling link: mkdir says "File exists", which helps nobody.
  fs::create_symlink(tmp.file("gone"), tmp.file("link"));
  const std::string msg = message_of<IoError>([&] { create_output_dir(tmp.file("link"), "run.out_dir"); });
  EXPECT_HAS(msg, "run.out_dir '" + tmp.file("link") + "' is a symbolic link to '" + tmp.file("gone") +
                      "', which does not exist");
  EXPECT_EQ(msg.find("File exists"), std::string::npos) << msg;
  EXPECT_HAS(message_of<IoError>([&] { create_output_dir(tmp.file("link/x"), "checkpoint.dir"); }),
             "symbolic link to");
}


TEST(CheckpointStore, RemoveStale) {
  TempDir tmp("ckpt");
  CheckpointStore store(tmp.str());
  const std::string pending = ".pending-00000005-" + new_job_id();
  fs::create_directory(tmp.file(pending));
  write_all(tmp.file(pending + "/model.safetensors"), "done");
  write_all(tmp.file(pending + "/trainer.safetensors.tmp.77.0"), "half");
  write_all(tmp.file("latest.tmp.123.0"), "step-");
  fs::create_directory(tmp.file("step-00000001"));  // published: not the store's to clean
  write_all(tmp.file("step-00000001/MANIFEST.json"), "{}");

  store.remove_stale(-1);  // keeps pending saves, drops half-written files
  EXPECT_TRUE(fs::exists(tmp.file(pending + "/model.safetensors")));
  EXPECT_FALSE(fs::exists(tmp.file(pending + "/trainer.safetensors.tmp.77.0")));
  EXPECT_EQ(tmp.listing(), (Names{pending, "step-00000001"}));

  write_all(tmp.file("latest.tmp.123.0"), "step-");
  store.remove_stale(0);  // every pending save counts as idle
  EXPECT_EQ(tmp.listing(), (Names{"step-00000001"}));
}

TEST(CheckpointStore, OneWriterPerStep) {
  TempDir tmp("ckpt");
  CheckpointStore store(tmp.str());
  const std::string a = new_job_id(), b = new_job_id();
  ASSERT_NE(a, b);
  EXPECT_EQ(store.begin_save(a, 7), tmp.file(".pending-00000007-" + a));
  const std::string msg = message_of<IoError>([&] { store.begin_save(b, 7, 60); });
  EXPECT_HAS(msg, "another writer");
  EXPECT_HAS(msg, a);
  EXPECT_FALSE(store.pending(b, 7));
  store.begin_save(b, 8, 60);  // another step is no conflict
  store.begin_save(b, 7, 0);   // a's save counts as stale now and goes
  EXPECT_FALSE(store.pending(a, 7));
  EXPECT_TRUE(store.pending(b, 7));
}

TEST(CheckpointStore, WriterLockNamesTheHolder) {
  TempDir tmp("ckpt");
  {
    CheckpointStore first(tmp.str());
    first.lock_for_writing("pid 4242 on host alpha");
    first.lock_for_writing("again");  // the holder itself: a no-op
    // flock belongs to the open file description, so a second store in this
    // process conflicts just as another process would.
    CheckpointStore second(tmp.str());
    EXPECT_HAS(message_of<IoError>([&] { second.lock_for_writing("pid 1 on host beta"); }), "pid 4242 on host alpha");
    // The fix names the setting that chose the directory where the caller
    // runs: checkpoint.dir for a trainer, --dir for `ckpt serve`.
    EXPECT_HAS(message_of<IoError>([&] { second.lock_for_writing("b"); }), "choose another checkpoint.dir");
    const std::string served = message_of<IoError>([&] { second.lock_for_writing("b", "--dir"); });
    EXPECT_HAS(served, "choose another --dir");
    EXPECT_EQ(served.find("checkpoint.dir"), std::string::npos) << served;
  }
  CheckpointStore third(tmp.str());
  EXPECT_NO_THROW(third.lock_for_writing("pid 2 on host gamma"));  // released with its holder
}

TEST(CheckpointReader, RestoreRefusesMismatchAndChangesNothing) {
  TempDir tmp("ckpt");
  save_steps(tmp.str(), 5, 5);
  auto source = directory_source(tmp.str());
  const OpenedCheckpoint c = open_checkpoint(*source, 5);

  // A target that fits except for `change`; -7 marks memory that must stay.
  using Change = std::function<void(TestState&, RunState&, std::vector<float>& extra)>;
  auto refuses = [&](const Change& change, const std::string& says) {
    TestState t;
    std::vector<float> extra(2, -7.0f);
    t.w.assign(6, -7.0f), t.b.assign(3, -7.0f), t.step = -7;
    RunState rs;
    rs.add("model", "b", DType::F32, {3}, t.b.data());
    rs.add("trainer", "adam.m", DType::F32, {2, 3}, t.m.data());
    rs.add_scalar("trainer", "step", &t.step);
    rs.add_scalar("trainer", "tokens", &t.tokens);
    change(t, rs, extra);
    const std::string msg = message_of<IoError>([&] { restore_run_state(c, rs); });
    EXPECT_HAS(msg, says);
    EXPECT_HAS(msg, "step-00000005");
    // Entries that do fit are not copied either: nothing changes.
    EXPECT_EQ(std::tie(t.step, t.w, t.b, extra),
              std::make_tuple(-7, std::vector<float>(6, -7.0f), std::vector<float>(3, -7.0f), std::vector<float>(2, -7.0f)));
  };
  refuses([](TestState& t, RunState& rs, std::vector<float>& extra) {
    rs.add("model", "w", DType::F32, {2, 3}, t.w.data());
    rs.add("model", "extra", DType::F32, {2}, extra.data());
  }, "1 missing from the checkpoint (model tensor 'extra')");
  refuses([](TestState&, RunState&, std::vector<float>&) {}, "1 in the checkpoint but not in this run (model tensor 'w')");
  refuses([](TestState& t, RunState& rs, std::vector<float>&) { rs.add("model", "w", DType::F32, {3, 2}, t.w.data()); },
          "1 of another dtype or shape (model tensor 'w'");
}

}  // namespace
