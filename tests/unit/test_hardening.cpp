// Issue 12's classes of bad input, one test each where it can run in one
// process: values f32 cannot hold, text that cannot be what the user meant,
// inputs that would block, the checks before a run allocates (rank
// agreement, replicas, threads, memory), numerics hints, weight metadata,
// stale temporary files and metrics on a failing disk.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <thread>

#include "launch/divergence.h"
#include "launch/metrics.h"
#include "launch/preflight.h"
#include "launch/weights.h"
#include "layers/model.h"
#include "parallel/thread_communicator.h"
#include "runtime/config/config.h"
#include "runtime/error.h"
#include "runtime/io/atomic_file.h"
#include "runtime/io/input_file.h"
#include "runtime/io/json.h"
#include "runtime/io/safetensors.h"
#include "temp_dir.h"

namespace lintrain {
namespace {

using test::TempDir;

#define EXPECT_HAS(text, part) EXPECT_NE(std::string(text).find(part), std::string::npos) << "missing '" << (part) << "' in: " << (text)

std::string parse_error(const std::string& yaml, const std::vector<std::string>& sets = {}) {
  try {
    parse_run_config(yaml, sets, "run.yaml");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

const char* kMqar = "data: {kind: mqar}\n";

// ---- numbers that f32 cannot hold ----------------------------------------------------

TEST(Hardening, NumbersOutsideF32AreRefusedForEveryKey) {
  EXPECT_HAS(parse_error(kMqar, {"optim.adamw.eps=1e-50"}), "optim.adamw.eps: 1e-50 underflows f32");
  EXPECT_HAS(parse_error(kMqar, {"model.rms_norm_eps=1e-45"}), "model.rms_norm_eps: 1e-45 underflows f32");
  EXPECT_HAS(parse_error(kMqar, {"optim.lr=1e39"}), "optim.lr: 1e39 overflows f32");
  EXPECT_HAS(parse_error(kMqar, {"model.rope_theta=1e300"}), "overflows f32");
  // In lists and in group rules too.
  EXPECT_HAS(parse_error(kMqar, {"optim.adamw.betas=[0.9, 1e-40]"}), "optim.adamw.betas[1]: 1e-40 underflows f32");
  EXPECT_HAS(parse_error(std::string(kMqar) + "optim:\n  groups: [{match: \"*\", lr_scale: 1e-39}]\n"),
             "underflows f32");
  // 0 and ordinary values pass.
  EXPECT_EQ(parse_error(kMqar, {"optim.weight_decay=0", "optim.adamw.eps=1e-30"}), "(no error)");
}

// ---- text that cannot be what the user meant -------------------------------------------

TEST(Hardening, AnUnclosedQuoteThatSwallowsTheFileIsRefused) {
  // yaml-cpp folds the rest of the file into the value; the run would be
  // named "abc model: hidden_size: 64".
  const std::string dq = std::string(kMqar) + "run:\n  name: \"abc\nmodel:\n  hidden_size: 64\n";
  EXPECT_HAS(parse_error(dq), "run.yaml:3: run.name: the quoted value \"abc is not closed on its line");
  EXPECT_HAS(parse_error(dq), "close the quote (\") on that line");
  const std::string sq = std::string(kMqar) + "run:\n  out_dir: 'runs/x\n";  // at the very end of the file
  EXPECT_HAS(parse_error(sq), "run.out_dir: the quoted value 'runs/x is not closed on its line");
  const std::string in_list = std::string(kMqar) + "optim:\n  no_decay: [\"*norm*, \"*bias*\"]\n";
  EXPECT_NE(parse_error(in_list), "(no error)");
  // Quotes that close on their line, escaped quotes and '' inside '...' are fine.
  EXPECT_EQ(parse_error(std::string(kMqar) + "run:\n  name: \"a \\\"b\\\" c\"\n  out_dir: 'it''s'\n"), "(no error)");
  EXPECT_EQ(parse_run_config(std::string(kMqar) + "run: {name: 'it''s'}\n", {}, "run.yaml").run.name, "it's");
}

// yaml-cpp 0.7's YAML::LoadAll never returns on these (found by fuzz_config).
TEST(Hardening, TextThatYamlReadsAsNothingIsRefusedWithoutHanging) {
  EXPECT_HAS(parse_error(","), "YAML reads this file as an empty value, not a mapping of sections");
  EXPECT_HAS(parse_error(",onulldel: {vocab_size: 257}\n---\nmdoel: {vocab_size: 512}\n...\n"),
             "YAML reads this file as an empty value");
  EXPECT_HAS(parse_error("data: {kind: mqar}\n---\nrun: {name: b}\n"), "holds more than one YAML document");
  // Empty files, comments and a lone document marker are an empty run file: all defaults.
  for (const char* empty : {"", "# nothing\n", "---\n", "~\n"})
    EXPECT_EQ(parse_error(empty, {"data.kind=mqar"}), "(no error)") << empty;
}

// A run file that leaves the default pattern (LLLS) with fewer layers is
// valid, and so is the config.yaml it records, which lists every key.
TEST(Hardening, ARecordedConfigWithTheDefaultPatternReadsBack) {
  const RunConfig c = parse_run_config("data: {kind: mqar}\nmodel: {num_hidden_layers: 2}\n", {}, "run.yaml");
  const std::string yaml = config_to_yaml(c);
  EXPECT_EQ(config_to_yaml(parse_recorded_run_config(yaml, "run.yaml")), yaml);
}

TEST(Hardening, ControlCharactersInNamesAreRefused) {
  EXPECT_HAS(parse_error(std::string(kMqar) + "run:\n  name: \"a\\x01b\"\n"), "control character (code 1)");
  EXPECT_HAS(parse_error(std::string(kMqar) + "run:\n  name: \"a\\nb\"\n"), "control character (code 10)");
  EXPECT_HAS(parse_error(std::string(kMqar) + "run:\n  name: \"x\\ty\"\n"), "run.name: the value holds a control character (code 9)");
}

// Spaces only read as empty in every listing: refused like the empty string.
TEST(Hardening, NamesAndPathsOfOnlySpacesAreRefused) {
  EXPECT_HAS(parse_error(std::string(kMqar) + "run: {out_dir: \"   \"}\n"), "run.out_dir: must not be only spaces");
  EXPECT_HAS(parse_error(std::string(kMqar) + "run: {name: \" \"}\n"), "run.name: must not be only spaces");
  EXPECT_EQ(parse_run_config(std::string(kMqar) + "run: {out_dir: \" o\"}\n", {}, "run.yaml").run.out_dir, " o");
}

TEST(Hardening, AWrittenLayerPatternLongerThanTheLayersIsRefused) {
  EXPECT_HAS(parse_error(kMqar, {"model.num_hidden_layers=2", "model.layer_pattern=LLLS"}),
             "model.layer_pattern 'LLLS' has 4 letters but model.num_hidden_layers is 2");
  EXPECT_HAS(parse_error(kMqar, {"model.num_hidden_layers=2", "model.layer_pattern=LLLS"}), "shorten the pattern to 'LL'");
  // The default pattern simply stops early.
  EXPECT_EQ(parse_error(kMqar, {"model.num_hidden_layers=2"}), "(no error)");
}

// ---- inputs that would block, and path errors in words ---------------------------------------

TEST(Hardening, AFifoOrADeviceIsNeverOpenedAsAnInput) {
  TempDir dir;
  const std::string fifo = dir.file("pipe");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  // Each of these would block forever in a plain open() or read().
  auto message = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  EXPECT_HAS(message([&] { load_run_config(fifo); }), "run file '" + fifo + "' is a FIFO (named pipe), not a regular file");
  EXPECT_HAS(message([&] { read_input_file(fifo, "token file"); }), "is a FIFO");
  EXPECT_HAS(message([&] { load_safetensors(fifo); }), "is a FIFO");
  EXPECT_HAS(parse_error("data: {kind: tokens, path: " + fifo + "}\n"), "data.path '" + fifo + "' is a FIFO");
  EXPECT_HAS(parse_error("data: {kind: text, path: " + fifo + "}\n"), "is a FIFO");
  EXPECT_HAS(parse_error("data: {kind: tokens, path: /dev/zero}\n"), "is a character device");
  EXPECT_HAS(message([&] { read_input_file("/dev/zero", "run file"); }), "is a character device");
}

TEST(Hardening, PathErrorsSayWhatIsWrong) {
  EXPECT_HAS(input_error_text("/x/y", "data.path", EACCES), "data.path '/x/y': permission denied");
  EXPECT_HAS(input_error_text("rel/y", "run file", ENOENT), "does not exist (relative to the working directory ");
  EXPECT_HAS(input_error_text("/etc/passwd/x", "run file", ENOTDIR), "is a file, not a directory");
  TempDir dir;
  const std::string file = dir.write("a.txt", "abc");
  EXPECT_HAS(parse_error("data: {kind: tokens, path: " + file + "/sub}\n"), "is a file, not a directory");
  if (::geteuid() != 0) {  // root reads everything
    ASSERT_EQ(::chmod(dir.str().c_str(), 0), 0);
    EXPECT_HAS(parse_error("data: {kind: tokens, path: " + file + "}\n"), "permission denied");
    ::chmod(dir.str().c_str(), 0755);
  }
}

// ---- before a run allocates -------------------------------------------------------------------

RunConfig small_config() {
  RunConfig c = parse_run_config(
      "data: {kind: mqar, seq_len: 64}\n"
      "model: {vocab_size: 64, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 4, intermediate_size: 64,"
      " layer_pattern: LS, linear_attention: {block_size: 16}}\n"
      "train: {micro_batch: 2}\n",
      {}, "run.yaml");
  return c;
}

TEST(Hardening, RanksWithDifferentSettingsStopNamingTheKeys) {
  std::vector<std::string> errors(3);
  run_ranks(3, [&](Communicator& world) {
    RunConfig c = small_config();
    if (world.rank() == 2) {
      c.optim.lr = 0.01;
      c.data.seq_len = 128;
    }
    try {
      check_ranks_agree(c, "", world);
    } catch (const ConfigError& e) {
      errors[static_cast<size_t>(world.rank())] = e.what();
    }
  });
  for (const std::string& e : errors) {  // every rank stops, with the same message
    EXPECT_HAS(e, "rank 2 differs from rank 0");
    EXPECT_HAS(e, "data.seq_len is 64 on rank 0 but 128 on rank 2");
    EXPECT_HAS(e, "optim.lr is 0.0 on rank 0 but 0.01 on rank 2");
  }
  // Equal settings pass.
  run_ranks(2, [&](Communicator& world) { check_ranks_agree(small_config(), "", world); });
}

TEST(Hardening, RanksWithDifferentInitFromFilesStop) {
  TempDir dir;
  const std::string a = dir.write("a.safetensors", "aaaa"), b = dir.write("b.safetensors", "bbbb");
  const std::string same = dir.write("c.safetensors", "aaaa");
  std::vector<std::string> errors(2);
  run_ranks(2, [&](Communicator& world) {
    try {
      check_ranks_agree(small_config(), world.rank() == 0 ? a : b, world);
    } catch (const ConfigError& e) {
      errors[static_cast<size_t>(world.rank())] = e.what();
    }
  });
  EXPECT_HAS(errors[0], "--init-from is " + a);
  EXPECT_HAS(errors[1], "on rank 1");
  // The contents count, not the name.
  run_ranks(2, [&](Communicator& world) { check_ranks_agree(small_config(), world.rank() == 0 ? a : same, world); });
}

TEST(Hardening, ReplicasThatDifferAreCaught) {
  const ModelConfig m = small_config().model;
  std::vector<std::string> errors(2);
  run_ranks(2, [&](Communicator& world) {
    LinearLlama model(m, 1, 16);
    model.init_weights(7);
    check_replicas_equal(model.params(), world, "after initialisation");  // equal by construction
    if (world.rank() == 1) model.params().data()[3] += 1e-7f;
    try {
      check_replicas_equal(model.params(), world, "after loading");
    } catch (const Error& e) {
      errors[static_cast<size_t>(world.rank())] = e.what();
    }
  });
  EXPECT_HAS(errors[0], "the weights of rank(s) 1 differ from rank 0's after loading");
  EXPECT_EQ(errors[0], errors[1]);
}

TEST(Hardening, ThreadCountsFarAboveTheCoresAreRefused) {
  RunConfig c = small_config();
  c.run.threads = 100000;
  try {
    threads_per_rank(c, 1);
    FAIL() << "accepted 100000 threads";
  } catch (const ConfigError& e) {
    EXPECT_HAS(e.what(), "run.threads = 100000 is far above the");
  }
  c.run.threads = 1;
  EXPECT_EQ(threads_per_rank(c, 1), 1);
}

// The estimate is made from the config alone; it must match what the model
// then allocates: weights exactly, activations from above but close.
TEST(Hardening, MemoryEstimateMatchesTheModel) {
  for (const char* pattern : {"LS", "L", "S"}) {
    RunConfig c = small_config();
    c.model.layer_pattern = pattern;
    const RunMemory est = estimate_run_memory(c, 1);
    LinearLlama model(c.model, c.train.micro_batch, c.data.seq_len);
    EXPECT_EQ(est.weights, 4.0 * static_cast<double>(model.table().param_count())) << pattern;
    const double saved = static_cast<double>(model.activation_bytes());
    EXPECT_GE(est.activations, saved) << pattern;
    EXPECT_LE(est.activations, 2.5 * saved) << pattern;  // the estimate rounds up (logits of 4096 tokens)
  }
}

TEST(Hardening, ARunThatCannotFitIsRefusedBeforeAllocating) {
  RunConfig c = small_config();
  c.model.hidden_size = 65536;
  c.model.intermediate_size = 262144;
  c.model.num_hidden_layers = 1000;
  c.model.num_attention_heads = 512;
  try {
    check_memory_fits(c, 1, 1);
    FAIL() << "a model of about 2.6e13 parameters was accepted";
  } catch (const ConfigError& e) {
    EXPECT_HAS(e.what(), "the run needs about ");
    EXPECT_HAS(e.what(), "model.hidden_size 65536");
    EXPECT_HAS(e.what(), "use a smaller model");
  }
  // Sizes whose products overflow 64 bits are refused, not wrapped.
  c.model.vocab_size = 2000000000;
  c.model.hidden_size = 2000000000;
  c.model.num_attention_heads = 1;
  EXPECT_THROW(check_memory_fits(c, 1, 1), ConfigError);
  EXPECT_NO_THROW(check_memory_fits(small_config(), 1, 1));
}

// ---- numerics ----------------------------------------------------------------------------

TEST(Hardening, DivergenceHintsNameTheLikelyCause) {
  const RunConfig c = small_config();
  {
    DivergenceWatch w(c);
    w.observe(1, NAN, NAN, 1e-3);
    EXPECT_HAS(w.hint(NAN, NAN, 1e-3), "the very first step is already non-finite");
  }
  {
    DivergenceWatch w(c);
    for (int s = 1; s <= 10; ++s) w.observe(s, 4.0, 1.0 * std::pow(2.0, s), 1e-3);  // a growing norm
    w.observe(11, 4.0, INFINITY, 1e-3);
    const std::string h = w.hint(4.0, INFINITY, 1e-3);
    EXPECT_HAS(h, "the loss is finite (4) but the gradient norm is inf");
    EXPECT_HAS(h, "had been growing");
    EXPECT_HAS(h, "lower optim.lr");
  }
  {
    DivergenceWatch w(c);
    for (int s = 1; s <= 10; ++s) w.observe(s, 4.0, 1.0, 1e-3);  // steady, then one spike
    w.observe(11, NAN, NAN, 1e-3);
    EXPECT_HAS(w.hint(NAN, NAN, 1e-3), "one batch caused it");
  }
}

TEST(Hardening, AFiniteBlowUpWarnsOnce) {
  DivergenceWatch w(small_config());
  int warnings = 0;
  for (int s = 1; s <= 5; ++s) warnings += !w.observe(s, 4.0, 1.0, 1e-3).empty();
  for (int s = 6; s <= 50; ++s) warnings += !w.observe(s, 3.0, 1.0, 1e-3).empty();  // training
  EXPECT_EQ(warnings, 0);
  const std::string first = w.observe(51, 9.0, 50.0, 1e-3);
  EXPECT_HAS(first, "is far above where this run started (4)");
  for (int s = 52; s <= 60; ++s) warnings += !w.observe(s, 9.0, 50.0, 1e-3).empty();
  EXPECT_EQ(warnings, 0);  // at most one per 100 steps
}

// ---- --init-from metadata -------------------------------------------------------------------

TEST(Hardening, InitFromChecksTheFilesLayerKinds) {
  TempDir dir;
  ModelConfig m = small_config().model;
  m.layer_pattern = "LS";
  // Same names and shapes (no output gate), other layer kinds.
  ModelConfig swapped = m;
  swapped.layer_pattern = "SL";
  m.linear_attention.output_gate = 0;
  swapped.linear_attention.output_gate = 0;
  LinearLlama a(m, 1, 16);
  a.init_weights(3);
  export_weights(a, ExportInfo{16, ""}, dir.str());
  LinearLlama b(swapped, 1, 16);
  try {
    import_weights(b, dir.file("model.safetensors"));
    FAIL() << "linear-layer weights loaded into a softmax layer";
  } catch (const IoError& e) {
    EXPECT_HAS(e.what(), "the file's lintrain.layer_kinds is 'LS' but this model's is 'SL'");
  }
  // Another feature map is caught too.
  ModelConfig other_map = m;
  other_map.linear_attention.feature_map = "relu";
  LinearLlama c(other_map, 1, 16);
  EXPECT_THROW(import_weights(c, dir.file("model.safetensors")), IoError);
  // The model it was written for loads it, with no note.
  LinearLlama d(m, 1, 16);
  EXPECT_TRUE(import_weights(d, dir.file("model.safetensors")).empty());
}

TEST(Hardening, InitFromAFileWithoutMetadataWarns) {
  TempDir dir;
  ModelConfig m = small_config().model;
  m.linear_attention.output_gate = 0;
  LinearLlama src(m, 1, 16);
  src.init_weights(3);
  std::vector<SafeTensor> tensors;
  for (const TensorView& v : src.table().views()) tensors.push_back({v.name, DType::F32, v.shape, src.params().at(v)});
  save_safetensors(dir.file("hf.safetensors"), tensors, {{"format", "pt"}});
  LinearLlama dst(m, 1, 16);
  const std::vector<std::string> notes = import_weights(dst, dir.file("hf.safetensors"));
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_HAS(notes[0], "does not say which of its layers are linear attention");
  EXPECT_HAS(notes[0], "layers 0 of this model");
  // Non-finite weights are refused.
  std::vector<float> bad(src.params().data(), src.params().data() + src.params().numel());
  bad[5] = NAN;
  tensors.clear();
  for (const TensorView& v : src.table().views()) tensors.push_back({v.name, DType::F32, v.shape, bad.data() + v.offset});
  save_safetensors(dir.file("nan.safetensors"), tensors, {});
  EXPECT_THROW(import_weights(dst, dir.file("nan.safetensors")), IoError);
}

// ---- files left behind, files that cannot be written -------------------------------------------

TEST(Hardening, StaleTemporaryFilesOfDeadWritersAreRemoved) {
  TempDir dir;
  const std::string dead = dir.write("model.safetensors.tmp.999999999.0", "x");  // no such pid
  const std::string mine = dir.write(str_cat("config.yaml.tmp.", ::getpid(), ".3"), "x");
  const std::string fresh = dir.write("metrics.jsonl.tmp.999999998.1", "x");
  const std::string other = dir.write("notes.tmp.txt", "x");
  const auto old = std::filesystem::file_time_type::clock::now() - std::chrono::hours(1);
  for (const std::string& p : {dead, mine, other}) std::filesystem::last_write_time(p, old);
  const std::vector<std::string> removed = remove_stale_temp_files(dir.str());
  ASSERT_EQ(removed.size(), 1u);
  EXPECT_EQ(removed[0], "model.safetensors.tmp.999999999.0");
  EXPECT_FALSE(std::filesystem::exists(dead));
  EXPECT_TRUE(std::filesystem::exists(mine));   // its writer (this process) runs
  EXPECT_TRUE(std::filesystem::exists(fresh));  // written to a moment ago
  EXPECT_TRUE(std::filesystem::exists(other));  // not one of ours
}

std::vector<std::string> lines_of(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line)) out.push_back(line);
  return out;
}

// A full disk in the middle of metrics.jsonl (simulated with RLIMIT_FSIZE,
// which fails a write past the limit like ENOSPC does): no record is cut in
// half, the held records are written once space returns, and the file is
// valid JSONL at every moment.
TEST(Hardening, MetricsSurviveAFullDiskWithoutLosingOrCuttingRecords) {
  TempDir dir;
  struct sigaction ignore = {}, old_action = {};
  ignore.sa_handler = SIG_IGN;
  ASSERT_EQ(sigaction(SIGXFSZ, &ignore, &old_action), 0);
  struct rlimit old_limit;
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old_limit), 0);
  {
    MetricsLog log(dir.str(), 100);
    const std::string path = dir.file("metrics.jsonl");
    for (int s = 1; s <= 3; ++s) log.write(s, {{"loss", 4.0 + s}, {"lr", 1e-3}});
    const struct rlimit tight = {300, old_limit.rlim_max};
    ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &tight), 0);
    for (int s = 4; s <= 20; ++s) log.write(s, {{"loss", 4.0 + s}, {"lr", 1e-3}});
    const std::vector<std::string> partial = lines_of(path);
    EXPECT_LT(partial.size(), 20u);
    for (const std::string& l : partial) EXPECT_NO_THROW(parse_json(l)) << l;  // no line cut in half
    EXPECT_LE(std::filesystem::file_size(path), 300u);
    EXPECT_HAS(log.loss_report(), "metrics records could not be written");
    ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &old_limit), 0);  // space returns
    log.write(21, {{"loss", 1.0}});
    const std::vector<std::string> all = lines_of(path);
    ASSERT_EQ(all.size(), 21u);
    for (size_t i = 0; i < all.size(); ++i)
      EXPECT_EQ(parse_json(all[i]).at("step"), i + 1) << all[i];
    EXPECT_EQ(log.loss_report(), "");
  }
  setrlimit(RLIMIT_FSIZE, &old_limit);
  sigaction(SIGXFSZ, &old_action, nullptr);
}

}  // namespace
}  // namespace lintrain
