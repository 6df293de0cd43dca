// What a resume may change and how a resumed run's records continue:
// config_changes between two resolved run files, check_resume_changes
// refusing what a checkpoint cannot carry over and naming the rest,
// metrics.jsonl's records (exact values) truncated to the checkpoint's step, and weight export
// refusing non-finite weights without touching the previous file.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "launch/metrics.h"
#include "launch/train_state.h"
#include "launch/weights.h"
#include "layers/model.h"
#include "runtime/config/config.h"
#include "runtime/error.h"
#include "runtime/io/json.h"
#include "temp_dir.h"

using namespace lintrain;

namespace {

RunConfig parse(const std::string& yaml) { return parse_run_config(yaml, {}, "run.yaml"); }
constexpr const char* kBase = "data: {kind: mqar, seq_len: 32}\ntrain: {micro_batch: 4}\n";

bool has(const std::vector<std::string>& notes, const std::string& part) {
  for (const std::string& n : notes)
    if (n.find(part) != std::string::npos) return true;
  return false;
}

std::string read_all(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

TEST(ConfigChanges, ListsExactlyTheKeysThatDiffer) {
  const RunConfig a = parse(kBase);
  RunConfig b = a;
  b.optim.lr = 5e-4;
  b.model.linear_attention.decay = "0.9";
  const std::vector<ConfigChange> c = config_changes(config_to_yaml(a), config_to_yaml(b));
  ASSERT_EQ(c.size(), 2u);
  // Table order: model before optim.
  EXPECT_EQ(c[0].key, "model.linear_attention.decay");
  EXPECT_EQ(c[1].key, "optim.lr");
  EXPECT_EQ(c[1].before, "0.0");
  EXPECT_EQ(c[1].after, "0.0005");
  EXPECT_TRUE(config_changes(config_to_yaml(a), config_to_yaml(a)).empty());
  // A key an older lintrain did not write reads "(absent)".
  const std::string old_yaml = "run: {name: run}\n";
  bool absent = false;
  for (const ConfigChange& x : config_changes(old_yaml, config_to_yaml(a)))
    absent |= x.key == "checkpoint.timeout_s" && x.before == "(absent)";
  EXPECT_TRUE(absent);
  EXPECT_THROW(config_changes("{unclosed", config_to_yaml(a)), ConfigError);
}

TEST(ResumePolicy, RefusesWhatACheckpointCannotCarryAndNamesEachKey) {
  const RunConfig saved = parse(kBase);
  RunConfig now = saved;
  now.model.hidden_size = 128;
  now.optim.name = "lion";
  now.run.seed = 9;
  try {
    check_resume_changes(config_to_yaml(saved), now, "ckpt/step-00000010");
    FAIL() << "a change of model, optimizer and seed was accepted";
  } catch (const ConfigError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("ckpt/step-00000010"), std::string::npos) << msg;
    EXPECT_NE(msg.find("model.hidden_size: 256 -> 128"), std::string::npos) << msg;
    EXPECT_NE(msg.find("optim.name: adamw -> lion"), std::string::npos) << msg;
    EXPECT_NE(msg.find("run.seed: 1234 -> 9"), std::string::npos) << msg;
    EXPECT_NE(msg.find("resume: none"), std::string::npos) << msg;  // the way out
  }
}

TEST(ResumePolicy, NamesChangesThatAlterTheContinuationAndIgnoresBookkeeping) {
  const RunConfig saved = parse(kBase);
  RunConfig now = saved;
  now.optim.lr = 1e-4;
  now.train.steps = 400;
  now.train.log_every = 7;   // bookkeeping: no note
  now.checkpoint.every = 5;  // bookkeeping: no note
  now.run.out_dir = "elsewhere";
  const std::vector<std::string> notes = check_resume_changes(config_to_yaml(saved), now, "c");
  EXPECT_EQ(notes.size(), 2u);
  EXPECT_TRUE(has(notes, "optim.lr changes from 0.0 to 0.0001"));
  EXPECT_TRUE(has(notes, "train.steps changes from 200 to 400: the learning-rate schedule is recomputed"));
  EXPECT_TRUE(check_resume_changes(config_to_yaml(saved), saved, "c").empty());
}

// Optimizer settings a checkpoint carries over but that change what the
// continuation does are named, lists (optim.no_decay) included.
TEST(ResumePolicy, NamesEveryOptimizerSettingThatChanges) {
  const RunConfig saved = parse(kBase);
  RunConfig now = saved;
  now.optim.no_decay = {"*norm*", "*embed*"};
  now.optim.weight_decay = 0.05;
  now.optim.adamw.eps = 1e-6;
  const std::vector<std::string> notes = check_resume_changes(config_to_yaml(saved), now, "c");
  ASSERT_EQ(notes.size(), 3u);
  EXPECT_TRUE(has(notes, R"(optim.no_decay changes from ["*norm*"] to ["*norm*", "*embed*"])"));
  EXPECT_TRUE(has(notes, "optim.weight_decay changes from"));
  EXPECT_TRUE(has(notes, "optim.adamw.eps changes from"));
}

TEST(ResumePolicy, LayoutChangesKeepOrChangeTheGlobalBatch) {
  // Saved: DP 1, micro_batch 4 = 4 sequences a step.
  const RunConfig saved = parse(kBase);
  RunConfig same = saved;
  same.parallel.data = 2;
  same.train.micro_batch = 2;  // DP 2 x 2 = 4: the same global batch
  std::vector<std::string> notes = check_resume_changes(config_to_yaml(saved), same, "c");
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_TRUE(has(notes, "the layout changes from DP 1 x SP 1 to DP 2 x SP 1 with the same global batch"));
  RunConfig bigger = saved;
  bigger.train.grad_accum = 2;
  notes = check_resume_changes(config_to_yaml(saved), bigger, "c");
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_TRUE(has(notes, "the global batch changes from 4 to 8 sequences"));
}

TEST(MetricsContinuation, KeepsWholeRecordsUpToTheCheckpointStep) {
  test::TempDir dir("metrics");
  // What a run killed after step 4 left: steps 1-4, an eval at 2, a
  // checkpoint at 2, and a line cut in the middle of being written.
  dir.write("metrics.jsonl",
            "{\"step\": 1, \"loss\": 5}\n{\"step\": 2, \"loss\": 4}\n{\"step\": 2, \"kind\": \"eval\", \"loss\": 4.5}\n"
            "{\"step\": 2, \"kind\": \"checkpoint\", \"bytes\": 10}\n{\"step\": 3, \"loss\": 3}\n"
            "{\"step\": 4, \"loss\": 2}\n{\"step\": 5, \"lo");
  {
    MetricsLog log(dir.str(), 10, /*resumed_step=*/2);
    log.write(3, {{"loss", 3.5}});
  }
  EXPECT_EQ(read_all(dir.file("metrics.jsonl")),
            "{\"step\": 1, \"loss\": 5}\n{\"step\": 2, \"loss\": 4}\n{\"step\": 2, \"kind\": \"eval\", \"loss\": 4.5}\n"
            "{\"step\": 2, \"kind\": \"checkpoint\", \"bytes\": 10}\n{\"step\": 3, \"loss\": 3.5}\n");
  // A fresh run starts the file over.
  { MetricsLog log(dir.str(), 10); }
  EXPECT_EQ(read_all(dir.file("metrics.jsonl")), "");
}

TEST(MetricsRecords, HoldEveryValueExactlyWholeOnesAsIntegersAndNonFiniteAsNull) {
  test::TempDir dir("metrics-values");
  const double lr = 3e-4 * 0.999;  // needs 17 significant digits to read back
  {
    MetricsLog log(dir.str(), 10);
    log.write(4, {{"loss", NAN}, {"grad_norm", -INFINITY}, {"skipped", 1.0}, {"bytes", 12345678901.0}, {"lr", lr}},
              "probe");
  }
  const std::string line = read_all(dir.file("metrics.jsonl"));
  const std::string head =
      "{\"step\": 4, \"kind\": \"probe\", \"loss\": null, \"grad_norm\": null, \"skipped\": 1, \"bytes\": 12345678901, \"lr\": ";
  EXPECT_EQ(line.substr(0, head.size()), head) << line;
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(parse_json(line).at("lr").get<double>(), lr) << line;
}

TEST(WeightExport, RefusesNonFiniteWeightsAndKeepsThePreviousFile) {
  test::TempDir dir("export");
  ModelConfig mc;
  mc.hidden_size = 16;
  mc.num_attention_heads = 2;
  mc.num_hidden_layers = 1;
  mc.intermediate_size = 32;
  LinearLlama model(mc, 1, 8);
  model.init_weights(1);
  export_weights(model, ExportInfo{8, ""}, dir.str());
  const std::string before = read_all(dir.file("model.safetensors"));
  const TensorView& v = model.table().at("model.norm.weight");
  model.params().at(v)[3] = std::nanf("");
  try {
    export_weights(model, ExportInfo{8, ""}, dir.str());
    FAIL() << "NaN weights were exported";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("weight 'model.norm.weight' is nan at index 3"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(read_all(dir.file("model.safetensors")), before);
}
