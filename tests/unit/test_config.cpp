// The run file: defaults, a full file, every class of error (with its line and
// suggestion), --set overrides, the README table and the YAML round trip.
// Configs are compared field by field by a hand-written helper, not through the
// key table, so a member the table forgets shows up as a failed round trip.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "runtime/config/config.h"
#include "runtime/config/schema.h"
#include "runtime/error.h"
#include "temp_dir.h"

using namespace lintrain;
namespace fs = std::filesystem;

namespace {

using test::TempDir;

RunConfig parse(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  return parse_run_config(yaml, overrides, "run.yaml");
}

// The ConfigError message of `f`, checked to be one line; "" (and a failure) if it does not throw.
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "message is not one line: " << msg;
    return msg;
  }
  ADD_FAILURE() << "expected a ConfigError";
  return "";
}

std::string parse_error(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  return error_of([&] { parse(yaml, overrides); });
}

#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << "missing '" << (needle) << "' in: " << (haystack)

// Every member, spelled out (not through the schema).
void expect_same(const RunConfig& a, const RunConfig& b) {
  EXPECT_EQ(a.run.name, b.run.name);
  EXPECT_EQ(a.run.out_dir, b.run.out_dir);
  EXPECT_EQ(a.run.seed, b.run.seed);
  EXPECT_EQ(a.run.threads, b.run.threads);
  const ModelConfig &m = a.model, &n = b.model;
  EXPECT_EQ(m.vocab_size, n.vocab_size);
  EXPECT_EQ(m.hidden_size, n.hidden_size);
  EXPECT_EQ(m.num_hidden_layers, n.num_hidden_layers);
  EXPECT_EQ(m.num_attention_heads, n.num_attention_heads);
  EXPECT_EQ(m.num_key_value_heads, n.num_key_value_heads);
  EXPECT_EQ(m.intermediate_size, n.intermediate_size);
  EXPECT_EQ(m.layer_pattern, n.layer_pattern);
  EXPECT_EQ(m.linear_attention.variant, n.linear_attention.variant);
  EXPECT_EQ(m.linear_attention.block_size, n.linear_attention.block_size);
  EXPECT_EQ(m.linear_attention.feature_map, n.linear_attention.feature_map);
  EXPECT_EQ(m.linear_attention.decay, n.linear_attention.decay);
  EXPECT_EQ(m.linear_attention.output_norm, n.linear_attention.output_norm);
  EXPECT_EQ(m.linear_attention.output_gate, n.linear_attention.output_gate);
  EXPECT_EQ(m.rms_norm_eps, n.rms_norm_eps);
  EXPECT_EQ(m.rope_theta, n.rope_theta);
  EXPECT_EQ(m.tie_word_embeddings, n.tie_word_embeddings);
  EXPECT_EQ(m.initializer_range, n.initializer_range);
  EXPECT_EQ(a.data.kind, b.data.kind);
  EXPECT_EQ(a.data.path, b.data.path);
  EXPECT_EQ(a.data.token_dtype, b.data.token_dtype);
  EXPECT_EQ(a.data.seq_len, b.data.seq_len);
  EXPECT_EQ(a.data.valid_fraction, b.data.valid_fraction);
  EXPECT_EQ(a.data.mqar_pairs, b.data.mqar_pairs);
  EXPECT_EQ(a.data.mqar_queries, b.data.mqar_queries);
  EXPECT_EQ(a.train.steps, b.train.steps);
  EXPECT_EQ(a.train.micro_batch, b.train.micro_batch);
  EXPECT_EQ(a.train.grad_accum, b.train.grad_accum);
  EXPECT_EQ(a.train.grad_clip, b.train.grad_clip);
  EXPECT_EQ(a.train.log_every, b.train.log_every);
  EXPECT_EQ(a.train.eval_every, b.train.eval_every);
  EXPECT_EQ(a.train.eval_batches, b.train.eval_batches);
  EXPECT_EQ(a.train.export_every, b.train.export_every);
  EXPECT_EQ(a.parallel.sequence, b.parallel.sequence);
  EXPECT_EQ(a.parallel.data, b.parallel.data);
  EXPECT_EQ(a.precision.compute, b.precision.compute);
  EXPECT_EQ(a.precision.fp8.enabled, b.precision.fp8.enabled);
  EXPECT_EQ(a.precision.fp8.recipe, b.precision.fp8.recipe);
  EXPECT_EQ(a.precision.fp8.format, b.precision.fp8.format);
  EXPECT_EQ(a.precision.fp8.amax_history_len, b.precision.fp8.amax_history_len);
  EXPECT_EQ(a.precision.fp8.margin, b.precision.fp8.margin);
  EXPECT_EQ(a.optim.name, b.optim.name);
  EXPECT_EQ(a.optim.lr, b.optim.lr);
  EXPECT_EQ(a.optim.weight_decay, b.optim.weight_decay);
  EXPECT_EQ(a.optim.adamw.betas, b.optim.adamw.betas);
  EXPECT_EQ(a.optim.adamw.eps, b.optim.adamw.eps);
  EXPECT_EQ(a.schedule.kind, b.schedule.kind);
  EXPECT_EQ(a.schedule.warmup_steps, b.schedule.warmup_steps);
  EXPECT_EQ(a.schedule.min_lr_ratio, b.schedule.min_lr_ratio);
  EXPECT_EQ(a.checkpoint.every, b.checkpoint.every);
  EXPECT_EQ(a.checkpoint.keep, b.checkpoint.keep);
  EXPECT_EQ(a.checkpoint.async, b.checkpoint.async);
  EXPECT_EQ(a.checkpoint.service, b.checkpoint.service);
  EXPECT_EQ(a.checkpoint.dir, b.checkpoint.dir);
  EXPECT_EQ(a.checkpoint.timeout_s, b.checkpoint.timeout_s);
  EXPECT_EQ(a.checkpoint.token_file, b.checkpoint.token_file);
  EXPECT_EQ(a.train.max_bad_steps, b.train.max_bad_steps);
  EXPECT_EQ(a.resume, b.resume);
}

// A file that sets every key to a value other than its default. The keys
// that only some data kinds read cannot all be set in one file: data_path
// "" gives data.kind mqar with its two keys, else tokens with its three.
std::string full_file(const std::string& data_path) {
  const std::string data = data_path.empty() ? "  kind: mqar\n"
                                               "  seq_len: 1024\n"
                                               "  mqar_pairs: 16\n"
                                               "  mqar_queries: 4\n"
                                             : "  kind: tokens\n"
                                               "  path: " + data_path + "\n"
                                               "  token_dtype: u32\n"
                                               "  seq_len: 1024\n"
                                               "  valid_fraction: 0.1\n";
  return "# a full run file\n"
         "run:\n"
         "  name: full\n"
         "  out_dir: runs/full\n"
         "  seed: 18446744073709551615  # 2^64 - 1\n"
         "  threads: 2\n"
         "model:\n"
         "  vocab_size: 512\n"
         "  hidden_size: 192\n"
         "  num_hidden_layers: 6\n"
         "  num_attention_heads: 6\n"
         "  num_key_value_heads: 2\n"
         "  intermediate_size: 512\n"
         "  layer_pattern: LS\n"
         "  linear_attention: {variant: retnet, block_size: 32, feature_map: relu, decay: 0.990,\n"
         "                     output_norm: false, output_gate: 1}\n"
         "  rms_norm_eps: 1.0e-6\n"
         "  rope_theta: 500000\n"
         "  tie_word_embeddings: true\n"
         "  initializer_range: 0.01\n"
         "data:\n" + data +
         "train: {steps: 1000, micro_batch: 8, grad_accum: 4, grad_clip: 0.5, log_every: 10,\n"
         "        eval_every: 100, eval_batches: 8, export_every: 500, max_bad_steps: 2}\n"
         "parallel: {sequence: 4, data: 2}\n"
         "precision:\n"
         "  compute: bf16\n"
         "  fp8: {enabled: false, recipe: blockwise, format: e4m3, amax_history_len: 16, margin: 1}\n"
         "optim: {name: adamw, lr: 3.0e-4, weight_decay: 0.1, adamw: {betas: [0.9, 0.95], eps: 1e-10}}\n"
         "schedule: {kind: linear, warmup_steps: 100, min_lr_ratio: 0}\n"
         "checkpoint: {every: 100, keep: 5, async: false, service: 'ckpt-host:50051', dir: /ckpt/full,\n"
         "             timeout_s: 30, token_file: /etc/lintrain/token}\n"
         "resume: none\n";
}

}  // namespace

// ---- defaults -------------------------------------------------------------------------

TEST(ConfigDefaults, EmptyDocumentGivesTheStructDefaults) {
  // The default data.kind is text, which needs a data.path: the empty file
  // alone is rejected with the fix, and is the struct defaults once it has one.
  EXPECT_CONTAINS(parse_error(""), "data.path is empty");
  TempDir dir;
  const std::string corpus = dir.write("corpus.txt", "hello world\n");
  RunConfig want;
  want.data.path = corpus;
  expect_same(parse("", {"data.path=" + corpus}), want);
  // Sections that are present but empty change nothing either.
  expect_same(parse("run:\nmodel:\n  linear_attention:\ndata: {path: " + corpus + "}\n"), want);
  // data.kind: mqar needs no data; everything else stays at its default.
  RunConfig mqar;
  mqar.data.kind = "mqar";
  expect_same(parse("data: {kind: mqar}\n"), mqar);
  EXPECT_EQ(parse("data: {kind: mqar}\n").source, "run.yaml");
}

TEST(ConfigDefaults, EveryDefaultIsAValidValueOfItsKey) {
  // Writing each key's documented default back through --set is accepted and
  // changes nothing: no default lies outside its own range or choices.
  RunConfig mqar;
  mqar.data.kind = "mqar";
  for (const config::KeySpec& k : config::run_config_keys()) {
    std::string text = k.format(k.read(mqar));
    SCOPED_TRACE(k.name + "=" + text);
    expect_same(parse("data: {kind: mqar}\n", {k.name + "=" + text}), mqar);
  }
}

TEST(ConfigDefaults, TableHasOneRowPerKeyInSchemaOrder) {
  const std::string md = config_reference_markdown();
  EXPECT_EQ(md.rfind("| key | type | default | meaning |\n|---|---|---|---|\n", 0), 0u);
  size_t pos = 0, rows = 0;
  std::set<std::string> names;
  for (const config::KeySpec& k : config::run_config_keys()) {
    const size_t at = md.find("| `" + k.name + "` |", pos);
    ASSERT_NE(at, std::string::npos) << k.name << " missing or out of order";
    pos = at + 1;
    ++rows;
    EXPECT_TRUE(names.insert(k.name).second) << "duplicate key " << k.name;
    EXPECT_FALSE(k.meaning.empty()) << k.name;
  }
  EXPECT_EQ(static_cast<size_t>(std::count(md.begin(), md.end(), '\n')), rows + 2);
  // Spot checks of rows against config.h, written out by hand.
  EXPECT_CONTAINS(md, "| `model.hidden_size` | int, >= 1 | `256` |");
  EXPECT_CONTAINS(md, "| `model.rms_norm_eps` | float, > 0 | `1.0e-5` |");
  EXPECT_CONTAINS(md, "| `optim.adamw.betas` | list of 2 floats, each in [0, 1) | `[0.9, 0.999]` |");
  EXPECT_CONTAINS(md, "| `data.kind` | enum: mqar, text, tokens, megatron | `text` |");
  EXPECT_CONTAINS(md, "| `model.linear_attention.decay` | string or number: \"\", none, tnl, retnet, or a float in (0, 1] | `\"\"` |");
  EXPECT_CONTAINS(md, "| `schedule.min_lr_ratio` | float, in [0, 1] | `0.1` |");
  EXPECT_CONTAINS(md, "| `resume` | string | `auto` |");
  // At least these keys the optimizer and launcher read.
  for (const char* key : {"optim.name", "optim.lr", "optim.weight_decay", "optim.adamw.eps", "run.threads",
                          "checkpoint.service", "precision.fp8.margin", "model.linear_attention.output_gate"})
    EXPECT_NE(config::find_key(key), nullptr) << key;
}

TEST(ConfigDefaults, SectionsAreContiguousInTheTable) {
  // config_to_yaml opens each section once; a section split across the table
  // would write it twice (a duplicate key when read back).
  std::vector<std::string> closed;
  std::string current = "\x01";
  for (const config::KeySpec& k : config::run_config_keys()) {
    const std::string top = k.name.substr(0, k.name.find('.'));
    if (top != current) {
      EXPECT_EQ(std::find(closed.begin(), closed.end(), top), closed.end()) << top << " reopened at " << k.name;
      closed.push_back(current);
      current = top;
    }
  }
}

// ---- a full file ----------------------------------------------------------------------

TEST(ConfigParse, FullFileSetsEveryKey) {
  TempDir dir;
  const std::string tokens = dir.write("train.bin", std::string(64, '\0'));
  const std::string path = dir.write("run.yaml", full_file(tokens));
  const RunConfig c = load_run_config(path);
  EXPECT_EQ(c.source, path);
  EXPECT_EQ(c.run.name, "full");
  EXPECT_EQ(c.run.out_dir, "runs/full");
  EXPECT_EQ(c.run.seed, 18446744073709551615ull);
  EXPECT_EQ(c.run.threads, 2);
  EXPECT_EQ(c.model.vocab_size, 512);
  EXPECT_EQ(c.model.hidden_size, 192);
  EXPECT_EQ(c.model.num_hidden_layers, 6);
  EXPECT_EQ(c.model.num_attention_heads, 6);
  EXPECT_EQ(c.model.num_key_value_heads, 2);
  EXPECT_EQ(c.model.intermediate_size, 512);
  EXPECT_EQ(c.model.layer_pattern, "LS");
  EXPECT_EQ(c.model.linear_attention.variant, "retnet");
  EXPECT_EQ(c.model.linear_attention.block_size, 32);
  EXPECT_EQ(c.model.linear_attention.feature_map, "relu");
  EXPECT_EQ(c.model.linear_attention.decay, "0.99");  // one spelling per number
  EXPECT_EQ(c.model.linear_attention.output_norm, 0);
  EXPECT_EQ(c.model.linear_attention.output_gate, 1);
  EXPECT_EQ(c.model.rms_norm_eps, 1.0e-6);
  EXPECT_EQ(c.model.rope_theta, 500000.0);
  EXPECT_TRUE(c.model.tie_word_embeddings);
  EXPECT_EQ(c.model.initializer_range, 0.01);
  EXPECT_EQ(c.data.kind, "tokens");
  EXPECT_EQ(c.data.path, tokens);
  EXPECT_EQ(c.data.token_dtype, "u32");
  EXPECT_EQ(c.data.seq_len, 1024);
  EXPECT_EQ(c.data.valid_fraction, 0.1);
  EXPECT_EQ(c.train.steps, 1000);
  EXPECT_EQ(c.train.micro_batch, 8);
  EXPECT_EQ(c.train.grad_accum, 4);
  EXPECT_EQ(c.train.grad_clip, 0.5);
  EXPECT_EQ(c.train.log_every, 10);
  EXPECT_EQ(c.train.eval_every, 100);
  EXPECT_EQ(c.train.eval_batches, 8);
  EXPECT_EQ(c.train.export_every, 500);
  EXPECT_EQ(c.parallel.sequence, 4);
  EXPECT_EQ(c.parallel.data, 2);
  EXPECT_EQ(c.precision.compute, "bf16");
  EXPECT_FALSE(c.precision.fp8.enabled);
  EXPECT_EQ(c.precision.fp8.recipe, "blockwise");
  EXPECT_EQ(c.precision.fp8.format, "e4m3");
  EXPECT_EQ(c.precision.fp8.amax_history_len, 16);
  EXPECT_EQ(c.precision.fp8.margin, 1);
  EXPECT_EQ(c.optim.name, "adamw");
  EXPECT_EQ(c.optim.lr, 3.0e-4);
  EXPECT_EQ(c.optim.weight_decay, 0.1);
  EXPECT_EQ(c.optim.adamw.betas, (std::vector<double>{0.9, 0.95}));
  EXPECT_EQ(c.optim.adamw.eps, 1e-10);
  EXPECT_EQ(c.schedule.kind, "linear");
  EXPECT_EQ(c.schedule.warmup_steps, 100);
  EXPECT_EQ(c.schedule.min_lr_ratio, 0.0);
  EXPECT_EQ(c.checkpoint.every, 100);
  EXPECT_EQ(c.checkpoint.keep, 5);
  EXPECT_FALSE(c.checkpoint.async);
  EXPECT_EQ(c.checkpoint.service, "ckpt-host:50051");
  EXPECT_EQ(c.checkpoint.dir, "/ckpt/full");
  EXPECT_EQ(c.checkpoint.timeout_s, 30.0);
  EXPECT_EQ(c.checkpoint.token_file, "/etc/lintrain/token");
  EXPECT_EQ(c.train.max_bad_steps, 2);
  EXPECT_EQ(c.resume, "none");
  const RunConfig m = parse(full_file(""));
  EXPECT_EQ(m.data.kind, "mqar");
  EXPECT_EQ(m.data.mqar_pairs, 16);
  EXPECT_EQ(m.data.mqar_queries, 4);
}

TEST(ConfigParse, TextDataAcceptsAFileOrADirectory) {
  TempDir dir;
  const std::string file = dir.write("a.txt", "abc");
  EXPECT_EQ(parse("data: {path: " + file + "}\n").data.path, file);
  EXPECT_EQ(parse("data: {path: " + dir.str() + "}\n").data.path, dir.str());
  // tokens reads one file, not a directory.
  EXPECT_CONTAINS(parse_error("data: {kind: tokens, path: " + dir.str() + "}\n"),
                  "is a directory; data.kind tokens reads one regular token file");
}

TEST(ConfigParse, RelativeDataPathsResolveFromTheWorkingDirectory) {
  TempDir dir;
  dir.write("rel.txt", "abc");
  const fs::path old = fs::current_path();
  fs::current_path(dir.str());
  EXPECT_EQ(parse("data: {path: rel.txt}\n").data.path, "rel.txt");  // kept as written
  const std::string err = parse_error("data: {path: missing.txt}\n");
  fs::current_path(old);
  EXPECT_CONTAINS(err, "run.yaml:1: data.path 'missing.txt' does not exist (relative to the working directory ");
}

TEST(ConfigParse, ValuesAreReadStrictlyByType) {
  const std::string m = "data: {kind: mqar}\n";
  EXPECT_EQ(parse(m + "optim: {lr: 1}\n").optim.lr, 1.0);  // an integer is a fine float
  EXPECT_EQ(parse(m + "model: {linear_attention: {output_gate: true}}\n").model.linear_attention.output_gate, 1);
  EXPECT_EQ(parse(m + "model: {linear_attention: {output_norm: -1}}\n").model.linear_attention.output_norm, -1);
  EXPECT_EQ(parse(m + "checkpoint: {dir: }\n").checkpoint.dir, "");  // an empty value is ""
  EXPECT_CONTAINS(parse_error(m + "model: {hidden_size: 128.0}\n"), "expected an integer, got '128.0'");
  EXPECT_CONTAINS(parse_error(m + "train: {steps: 1e3}\n"), "expected an integer, got '1e3'");
  EXPECT_CONTAINS(parse_error(m + "optim: {lr: 0x10}\n"), "expected a number, got '0x10'");
  EXPECT_CONTAINS(parse_error(m + "optim: {lr: .nan}\n"), "expected a number, got '.nan'");
  EXPECT_CONTAINS(parse_error(m + "model: {tie_word_embeddings: yes}\n"), "expected true or false, got 'yes'");
  EXPECT_CONTAINS(parse_error(m + "model: {hidden_size: [1, 2]}\n"), "expected an integer, got a list");
  EXPECT_CONTAINS(parse_error(m + "train: {steps: }\n"), "train.steps: expected an integer, got an empty value");
  EXPECT_CONTAINS(parse_error(m + "model: {hidden_size: 99999999999}\n"), "does not fit in a 32-bit int");
  EXPECT_CONTAINS(parse_error(m + "run: {seed: -1}\n"), "run.seed: must be >= 0, got -1");
  EXPECT_CONTAINS(parse_error(m + "model: {linear_attention: {output_gate: 2}}\n"),
                  "expected -1 (the variant's default), false (0) or true (1), got '2'");
  EXPECT_CONTAINS(parse_error(m + "model: 5\n"), "run.yaml:2: model: expected a mapping of its keys (vocab_size, ");
  EXPECT_CONTAINS(parse_error("- a\n- b\n"), "run.yaml:1: a run file is a mapping of sections");
}

// ---- errors ---------------------------------------------------------------------------

TEST(ConfigErrors, UnknownKeySuggestsTheNearestKey) {
  EXPECT_EQ(parse_error("data: {kind: mqar}\nmodel:\n  vocab_size: 256\n  hiden_size: 64\n"),
            "run.yaml:4: unknown key 'model.hiden_size'; did you mean 'model.hidden_size'?");
  EXPECT_EQ(parse_error("data: {kind: mqar}\nschedule: {warmup: 10}\n"),
            "run.yaml:2: unknown key 'schedule.warmup'; did you mean 'schedule.warmup_steps'?");
  EXPECT_EQ(parse_error("data: {kind: mqar}\nmodel: {linear_attention: {varaint: basic}}\n"),
            "run.yaml:2: unknown key 'model.linear_attention.varaint'; did you mean 'model.linear_attention.variant'?");
  // The right name in the wrong section.
  EXPECT_EQ(parse_error("data: {kind: mqar}\ntrain:\n  seq_len: 64\n"),
            "run.yaml:3: unknown key 'train.seq_len'; did you mean 'data.seq_len'?");
  // Nothing close: the valid keys of that section.
  EXPECT_CONTAINS(parse_error("data: {kind: mqar}\noptim: {momentum: 0.9}\n"),
                  "run.yaml:2: unknown key 'optim.momentum'; valid keys in 'optim': name, lr, weight_decay, no_decay, "
                  "groups, adamw, lion, galore, spam, frugal");
}

TEST(ConfigErrors, UnknownSectionSuggestsTheNearestSection) {
  EXPECT_EQ(parse_error("data: {kind: mqar}\nmodle:\n  hidden_size: 64\n"),
            "run.yaml:2: unknown section 'modle'; did you mean 'model'?");
  EXPECT_EQ(parse_error("data: {kind: mqar}\nfp8: {enabled: true}\n"),
            "run.yaml:2: unknown section 'fp8'; did you mean 'precision.fp8'?");
  EXPECT_EQ(parse_error("data: {kind: mqar}\nresum: auto\n"), "run.yaml:2: unknown key 'resum'; did you mean 'resume'?");
  EXPECT_CONTAINS(parse_error("data: {kind: mqar}\nxyzzy: {a: 1}\n"),
                  "run.yaml:2: unknown section 'xyzzy'; valid top-level names: run, model, data, train, parallel, "
                  "precision, optim, schedule, checkpoint, resume");
}

TEST(ConfigErrors, WrongTypeNamesKeyLineAndValue) {
  EXPECT_EQ(parse_error("data: {kind: mqar}\nmodel:\n  hidden_size: abc\n"),
            "run.yaml:3: model.hidden_size: expected an integer, got 'abc'");
}

TEST(ConfigErrors, OutOfRangeNamesTheAllowedRange) {
  EXPECT_EQ(parse_error("data: {kind: mqar}\nmodel:\n  hidden_size: -8\n"),
            "run.yaml:3: model.hidden_size: must be >= 1, got -8");
  EXPECT_EQ(parse_error("data: {kind: mqar, valid_fraction: 1.0}\n"),
            "run.yaml:1: data.valid_fraction: must be in [0, 1), got 1.0");
  EXPECT_EQ(parse_error("data: {kind: mqar}\noptim: {lr: -1.0}\n"), "run.yaml:2: optim.lr: must be >= 0, got -1.0");
  EXPECT_EQ(parse_error("data: {kind: mqar}\nschedule: {min_lr_ratio: 1.5}\n"),
            "run.yaml:2: schedule.min_lr_ratio: must be in [0, 1], got 1.5");
  EXPECT_EQ(parse_error("data: {kind: mqar}\ncheckpoint: {keep: 0}\n"), "run.yaml:2: checkpoint.keep: must be >= 1, got 0");
  EXPECT_EQ(parse_error("data: {kind: mqar}\noptim:\n  adamw:\n    betas:\n      - 0.9\n      - 1.0\n"),
            "run.yaml:6: optim.adamw.betas[1]: must be in [0, 1), got 1.0");
  EXPECT_CONTAINS(parse_error("data: {kind: mqar}\noptim: {adamw: {betas: [0.9, 0.95, 0.99]}}\n"),
                  "optim.adamw.betas: expected a list of 2 numbers in [0, 1), got 3 numbers");
  EXPECT_CONTAINS(parse_error("data: {kind: mqar}\noptim: {adamw: {betas: 0.9}}\n"), "like [0.9, 0.95], got '0.9'");
  EXPECT_EQ(parse_error("data: {kind: mqar}\nmodel: {linear_attention: {decay: 1.5}}\n"),
            "run.yaml:2: model.linear_attention.decay: must be in (0, 1], got 1.5");
}

TEST(ConfigErrors, BadEnumValueSuggestsAChoice) {
  EXPECT_EQ(parse_error("data: {kind: txt}\n"),
            "run.yaml:1: data.kind: expected one of mqar, text, tokens, megatron, got 'txt'; did you mean 'text'?");
  EXPECT_EQ(parse_error("data: {kind: mqar}\noptim: {name: lino}\n"),
            "run.yaml:2: optim.name: expected one of adamw, lion, galore, spam, frugal, got 'lino'; did you mean 'lion'?");
  EXPECT_CONTAINS(parse_error("data: {kind: mqar}\nmodel: {linear_attention: {decay: tln}}\n"),
                  "got 'tln'; did you mean 'tnl'?");
  EXPECT_CONTAINS(parse_error("data: {kind: mqar}\nmodel: {layer_pattern: LLXS}\n"),
                  "run.yaml:2: model.layer_pattern: must be a non-empty string of L (linear attention) and S");
  EXPECT_CONTAINS(parse_error("data: {kind: mqar}\ncheckpoint: {service: 'host:0'}\n"),
                  "checkpoint.service: must be none, local or HOST:PORT");
  EXPECT_CONTAINS(parse_error("data: {kind: mqar}\ncheckpoint: {service: host}\n"), "got 'host'");
  EXPECT_EQ(parse("data: {kind: mqar}\ncheckpoint: {service: '[::1]:65535'}\n").checkpoint.service, "[::1]:65535");
}

TEST(ConfigErrors, HeadsMustDivideHiddenSize) {
  // The line is the one the user set last of the two keys.
  EXPECT_EQ(parse_error("data: {kind: mqar}\nmodel:\n  hidden_size: 100\n  num_attention_heads: 3\n"),
            "run.yaml:4: model.hidden_size 100 is not divisible by model.num_attention_heads 3; use a hidden_size "
            "of 96 or 102 (even head_dim) or another head count");
  EXPECT_CONTAINS(parse_error("data: {kind: mqar}\nmodel: {num_attention_heads: 4, num_key_value_heads: 3}\n"),
                  "run.yaml:2: model.num_attention_heads 4 is not divisible by model.num_key_value_heads 3; use one "
                  "of 1, 2, 4");
  EXPECT_CONTAINS(parse_error("data: {kind: mqar}\nmodel: {hidden_size: 12, num_attention_heads: 4}\n"),
                  "= 12 / 4 = 3 must be even for RoPE");
}

TEST(ConfigErrors, DataRulesNameTheKeysAndTheFix) {
  EXPECT_EQ(parse_error("data: {kind: text, path: /nonexistent/corpus.txt}\n"),
            "run.yaml:1: data.path '/nonexistent/corpus.txt' does not exist; check the path, or use data.kind: mqar");
  EXPECT_CONTAINS(parse_error("data: {kind: tokens}\n"), "data.path is empty; data.kind tokens needs a token file");
  TempDir dir;
  const std::string f = dir.write("c.txt", "x");
  EXPECT_CONTAINS(parse_error("model: {vocab_size: 128}\ndata: {path: " + f + "}\n"),
                  "run.yaml:1: model.vocab_size 128 is too small for data.kind text");
  EXPECT_CONTAINS(parse_error("data: {path: " + f + ", valid_fraction: 0}\n"), "data.valid_fraction is 0");
  EXPECT_CONTAINS(parse_error("data: {kind: mqar, seq_len: 20, mqar_pairs: 8}\n"),
                  "data.seq_len 20 is too short for mqar with 8 pairs and 8 queries: it needs 2 * pairs + queries = 24");
  EXPECT_CONTAINS(parse_error("model: {vocab_size: 16}\ndata: {kind: mqar, mqar_pairs: 8}\n"),
                  "model.vocab_size 16 is too small for mqar with 8 pairs");
  EXPECT_EQ(parse_error("data: {kind: mqar, seq_len: 100}\nparallel: {sequence: 3}\n"),
            "run.yaml:2: data.seq_len 100 is not divisible by parallel.sequence 3 (each sequence-parallel rank takes "
            "an equal chunk); use a seq_len of 99 or 102");
}

TEST(ConfigErrors, MegatronDataNeedsAPrefixOrABlendWhoseFilesExist) {
  EXPECT_CONTAINS(parse_error("data: {kind: megatron}\n"),
                  "run.yaml:1: data.kind megatron needs data.path (the prefix of a .bin/.idx pair) or data.blend");
  EXPECT_CONTAINS(parse_error("data: {kind: megatron, path: /nonexistent/web}\n"),
                  "run.yaml:1: data.path file '/nonexistent/web.idx' does not exist");
  EXPECT_CONTAINS(parse_error("data: {kind: megatron, blend: [0.7, /nonexistent/a, 0.3]}\n"),
                  "run.yaml:1: data.blend has 3 entries; it is pairs of a weight and a prefix");
  EXPECT_CONTAINS(parse_error("data: {kind: megatron, blend: [1, /x/a]}\n", {"data.path=/x/b"}),
                  "data.path '/x/b' and data.blend are both set");
  TempDir dir;
  dir.write("a.idx", "");
  EXPECT_CONTAINS(parse_error("data: {kind: megatron, blend: [2, " + dir.file("a") + "]}\n"),
                  "data.blend[1] file '" + dir.file("a.bin") + "' does not exist");
  dir.write("a.bin", "");
  EXPECT_CONTAINS(parse_error("model: {vocab_size: 100}\ndata: {kind: megatron, eod_token: 100, path: " +
                              dir.file("a") + "}\n"),
                  "run.yaml:2: data.eod_token 100 is not below model.vocab_size 100");
  EXPECT_CONTAINS(parse_error("data: {kind: text, blend: [1, a]}\n"),
                  "data.blend is [\"1\", a], but data.kind text does not read it (only data.kind megatron does)");
}

TEST(ConfigErrors, DataKeysOfAnotherKindAreRefused) {
  EXPECT_EQ(parse_error("data: {kind: mqar, path: /nonexistent}\n"),
            "run.yaml:1: data.path is /nonexistent, but data.kind mqar generates its sequences and does not read it "
            "(only data.kind text, tokens or megatron does); remove data.path or use data.kind text, tokens or megatron");
  EXPECT_EQ(parse_error("data: {kind: text}\n", {"data.kind=mqar", "data.valid_fraction=0.2"}),
            "--set data.valid_fraction=0.2: data.valid_fraction is 0.2, but data.kind mqar generates its sequences "
            "and does not read it (only data.kind text, tokens or megatron does); remove data.valid_fraction or use "
            "data.kind text, tokens or megatron");
  TempDir dir;
  const std::string f = dir.write("c.txt", "x");
  EXPECT_CONTAINS(parse_error("data: {kind: text, path: " + f + ", mqar_pairs: 4}\n"),
                  "run.yaml:1: data.mqar_pairs is 4, but data.kind text does not read it (only data.kind mqar does)");
  EXPECT_CONTAINS(parse_error("data: {kind: text, path: " + f + ", token_dtype: u32}\n"),
                  "data.token_dtype is u32, but data.kind text does not read it (only data.kind tokens does)");
  // A default value is fine (`lintrain config` writes every key), and so is a
  // recorded config, which was checked when its run started.
  EXPECT_EQ(parse("data: {kind: mqar, path: \"\", token_dtype: u16, valid_fraction: 0.05}\n").data.kind, "mqar");
  EXPECT_EQ(parse_recorded_run_config("data: {kind: mqar, path: /gone}\n", "config.yaml").data.path, "/gone");
}

TEST(ConfigErrors, WarmupLongerThanTheRunIsRefused) {
  const std::string m = "data: {kind: mqar}\n";
  EXPECT_EQ(parse_error(m + "train: {steps: 10}\nschedule: {warmup_steps: 20}\n"),
            "run.yaml:3: schedule.warmup_steps 20 is more than train.steps 10, so the learning rate would never reach "
            "optim.lr; use a warm-up of at most 10 steps or raise train.steps");
  EXPECT_CONTAINS(parse_error(m + "train: {steps: 100}\n", {"schedule.warmup_steps=1000"}),
                  "--set schedule.warmup_steps=1000: schedule.warmup_steps 1000 is more than train.steps 100");
  EXPECT_CONTAINS(parse_error(m + "schedule: {warmup_steps: 300}\n"),  // train.steps' default is 200
                  "schedule.warmup_steps 300 is more than train.steps 200");
  EXPECT_EQ(parse(m + "train: {steps: 10}\nschedule: {warmup_steps: 10}\n").schedule.warmup_steps, 10);
  // The default warm-up, and a file's run shortened for a try, are fine.
  EXPECT_EQ(parse(m + "train: {steps: 3}\n").schedule.warmup_steps, 20);
  EXPECT_EQ(parse(m + "schedule: {warmup_steps: 20}\n", {"train.steps=3"}).train.steps, 3);
}

TEST(ConfigErrors, AbsurdLearningRatesAreRefused) {
  const std::string m = "data: {kind: mqar}\n";
  EXPECT_EQ(parse_error(m + "optim:\n  lr: 1.0e-3\n  groups: [{match: \"*norm*\"}, {match: \"*\", lr_scale: 1e6}]\n"),
            "run.yaml:4: optim.groups[1].lr_scale 1e+06 times optim.lr 0.001 is a learning rate of 1000, above 10 "
            "where no optimizer trains; lower the rule's lr_scale");
  EXPECT_CONTAINS(parse_error(m + "optim: {groups: [{match: \"*\", lr_scale: 20000}]}\n"),
                  "optim.groups[0].lr_scale 20000 times the default lr of adamw 0.001 is a learning rate of 20");
  EXPECT_EQ(parse_error(m + "optim: {lr: 100}\n"),
            "run.yaml:2: optim.lr 100 is above 10, where no optimizer trains (real runs use 1e-4 to 1e-2); lower "
            "optim.lr");
  // A large scale on a small lr, and lr 1, are allowed.
  EXPECT_EQ(parse(m + "optim: {lr: 1.0e-4, groups: [{match: \"*\", lr_scale: 1000}]}\n").optim.groups[0].lr_scale,
            1000);
  EXPECT_EQ(parse(m + "optim: {lr: 1}\n").optim.lr, 1.0);
}

TEST(ConfigErrors, YamlSyntaxErrorNamesTheLine) {
  const std::string e = parse_error("data: {kind: mqar}\nmodel:\n  hidden_size: [1, 2\n");
  EXPECT_EQ(e.rfind("run.yaml:4:", 0), 0u) << e;  // yaml-cpp reports where the flow should have closed
  EXPECT_CONTAINS(e, "YAML syntax error: end of sequence flow not found");
  EXPECT_CONTAINS(parse_error("model:\n  hidden_size: 1\n bad: 2\n"), "run.yaml:3:2: YAML syntax error: ");
}

TEST(ConfigErrors, OneDocumentPerFile) {
  EXPECT_EQ(parse_error("data: {kind: mqar}\n---\ntrain: {steps: 5}\n"),
            "run.yaml: holds more than one YAML document (separated by ---); a run file is one");
  EXPECT_EQ(parse("---\ndata: {kind: mqar}\n").data.kind, "mqar");  // a leading --- is fine
}

TEST(ConfigErrors, DuplicateKeyNamesTheRepeat) {
  EXPECT_EQ(parse_error("data: {kind: mqar}\nmodel:\n  hidden_size: 128\n  hidden_size: 256\n"),
            "run.yaml:4: 'model.hidden_size' is given twice, on lines 3 and 4; keep one");
  EXPECT_EQ(parse_error("data: {kind: mqar}\ndata: {seq_len: 64}\n"),
            "run.yaml:2: 'data' is given twice, on lines 1 and 2; keep one");
}

TEST(ConfigErrors, AKeyIsGivenOnceInAnySpelling) {
  // Nested and dotted spellings of one key, in either order and at any depth.
  EXPECT_EQ(parse_error("data: {kind: mqar}\nmodel: {hidden_size: 64}\nmodel.hidden_size: 128\n"),
            "run.yaml:3: 'model.hidden_size' is given twice, on line 2 as 'model: hidden_size' and on line 3 as "
            "'model.hidden_size'; keep one");
  EXPECT_EQ(parse_error("data: {kind: mqar}\nmodel.linear_attention: {variant: basic}\n"
                        "model:\n  linear_attention.variant: retnet\n"),
            "run.yaml:4: 'model.linear_attention.variant' is given twice, on line 2 as 'model.linear_attention: "
            "variant' and on line 4 as 'model: linear_attention.variant'; keep one");
  // Inside a rule of optim.groups (yaml-cpp keeps both; the last used to win).
  EXPECT_EQ(parse_error("data: {kind: mqar}\noptim:\n  groups: [{match: \"*\", lr_scale: 1, lr_scale: 100}]\n"),
            "run.yaml:3: 'optim.groups[0].lr_scale' is given twice on line 3; keep one");
  EXPECT_EQ(parse_error("data: {kind: mqar}\n", {"optim.groups=[{match: '*', lr_scale: 1, lr_scale: 100}]"}),
            "--set optim.groups=[{match: '*', lr_scale: 1, lr_scale: 100}]: 'optim.groups[0].lr_scale' is given "
            "twice in this value; keep one");
  EXPECT_CONTAINS(parse_error("data: {kind: mqar}\n", {"model={hidden_size: 64, hidden_size: 128}"}),
                  "'model.hidden_size' is given twice in this value");
  // Different keys of one section in two spellings merge; --set overrides the file.
  const RunConfig c = parse("data: {kind: mqar}\nmodel: {hidden_size: 64}\nmodel.linear_attention: {variant: basic}\n",
                            {"model.hidden_size=128", "model={hidden_size: 256}"});
  EXPECT_EQ(c.model.hidden_size, 256);
  EXPECT_EQ(c.model.linear_attention.variant, "basic");
}

TEST(ConfigErrors, KeysAreNonEmptyNames) {
  EXPECT_EQ(parse_error("data: {kind: mqar}\n~: 3\n"),
            "run.yaml:2: a key at the top level is empty (~, null or nothing before ':'); keys are plain names like "
            "hidden_size");
  EXPECT_EQ(parse_error("data: {kind: mqar}\nmodel:\n  null: 3\n"),
            "run.yaml:3: a key in 'model' is empty (~, null or nothing before ':'); keys are plain names like "
            "hidden_size");
  EXPECT_CONTAINS(parse_error("data: {kind: mqar}\noptim: {groups: [{match: '*', ~: 1}]}\n"),
                  "run.yaml:2: a key in 'optim.groups[0]' is empty");
  EXPECT_EQ(parse_error("data: {kind: mqar}\nmodel: {[a]: 3}\n"),
            "run.yaml:2: keys are plain names like hidden_size; got a list as a key in 'model'");
}

TEST(ConfigErrors, TextThatIsNotTextNamesTheLineAndColumn) {
  EXPECT_EQ(parse_error(std::string("data: {kind: mqar}\nrun: {name: a") + '\0' + "b}\n"),
            "run.yaml:2:14: the file holds a NUL byte; a run file is UTF-8 text (is this a binary file, or one saved "
            "as UTF-16?)");
  EXPECT_EQ(parse_error("data: {kind: mqar}\ntrain:\n  steps: 5\x07\n"),
            "run.yaml:3:11: the file holds the control character code 7, which YAML does not allow in text; remove it");
  EXPECT_EQ(parse("data: {kind: mqar}\r\ntrain: {steps:\t5}\r\n").train.steps, 5);  // CRLF and tabs are text
}

TEST(ConfigErrors, TooDeepNestingSaysSo) {
  const std::string deep = "data: {kind: mqar}\nmodel: " + std::string(3000, '[') + std::string(3000, ']') + "\n";
  const std::string e = parse_error(deep);
  EXPECT_EQ(e.rfind("run.yaml:2:", 0), 0u) << e;
  EXPECT_CONTAINS(e, "YAML syntax error: lists and mappings nest too deeply for the YAML parser (hundreds of levels)");
  EXPECT_CONTAINS(parse_error("data: {kind: mqar}\n", {"optim.no_decay=" + std::string(3000, '[')}),
                  "the value is not valid YAML: lists and mappings nest too deeply");
}

TEST(ConfigErrors, AliasesCannotMultiplyTheWork) {
  // Each level repeats the one before ten times: 10^9 values from 400 bytes.
  std::string yaml = "data: {kind: mqar}\nl0: &l0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n";
  for (int i = 1; i <= 9; ++i) {
    yaml += str_cat("l", i, ": &l", i, " [");
    for (int j = 0; j < 10; ++j) yaml += str_cat(j ? ", " : "", "*l", i - 1);
    yaml += "]\n";
  }
  EXPECT_EQ(parse_error(yaml), "run.yaml: YAML aliases (*name) repeat more values than a run file holds; write the "
                               "values out");
}

TEST(ConfigErrors, AnAliasInsideItsOwnAnchorIsRefused) {
  // `*x` inside `&x` makes the tree a cycle: the walk must stop, not recurse
  // until the stack runs out (found by fuzz_config).
  const std::string e = parse_error("data: {kind: mqar}\na: &x {b: *x}\n");
  EXPECT_CONTAINS(e, "'a.b' is an alias (*name) of a mapping or list that contains it");
  EXPECT_CONTAINS(parse_error("data: {kind: mqar}\na: &x [1, *x]\n"), "'a[1]' is an alias (*name)");
  // Aliases that stack mappings without a cycle still end at a depth no run file needs.
  std::string deep = "data: {kind: mqar}\nl0: &l0 {v: 1}\n";
  for (int i = 1; i <= 70; ++i) deep += str_cat("l", i, ": &l", i, " {n: *l", i - 1, "}\n");
  EXPECT_CONTAINS(parse_error(deep), "nests 64 mappings or lists deep");
}

TEST(ConfigErrors, MissingOrUnreadableRunFile) {
  TempDir dir;
  const std::string missing = dir.str() + "/nope.yaml";
  EXPECT_EQ(error_of([&] { load_run_config(missing); }),
            "run file '" + missing + "' does not exist; check the path");
  EXPECT_EQ(error_of([&] { load_run_config(dir.str()); }),
            "run file '" + dir.str() + "' is a directory, not a regular file; give a regular file");
  // Errors inside a loaded file name the file.
  const std::string bad = dir.write("bad.yaml", "data: {kind: mqar}\ntrain: {steps: 0}\n");
  EXPECT_EQ(error_of([&] { load_run_config(bad); }), bad + ":2: train.steps: must be >= 1, got 0");
}

// ---- --set overrides --------------------------------------------------------------------

TEST(ConfigOverrides, ApplyInOrderAfterTheFile) {
  const std::string file = "data: {kind: mqar}\nmodel: {hidden_size: 128}\ntrain: {steps: 10}\n";
  const RunConfig c = parse(file, {"model.hidden_size=64", "train.steps=20", "model.hidden_size=96",
                                   "optim.adamw.betas=[0.9,0.95]", "optim.lr=3e-4", "model.tie_word_embeddings=true"});
  EXPECT_EQ(c.model.hidden_size, 96);
  EXPECT_EQ(c.train.steps, 20);
  EXPECT_EQ(c.optim.adamw.betas, (std::vector<double>{0.9, 0.95}));
  EXPECT_EQ(c.optim.lr, 3e-4);
  EXPECT_TRUE(c.model.tie_word_embeddings);
  // An override can repair a file that breaks a cross-field rule: the rules run after all overrides.
  const RunConfig fixed = parse("data: {kind: mqar}\nmodel: {hidden_size: 100, num_attention_heads: 3}\n",
                                {"model.hidden_size=96"});
  EXPECT_EQ(fixed.model.hidden_size, 96);
  // A whole section as a YAML mapping.
  const RunConfig la = parse("data: {kind: mqar}\n", {"model.linear_attention={variant: basic, block_size: 32}"});
  EXPECT_EQ(la.model.linear_attention.variant, "basic");
  EXPECT_EQ(la.model.linear_attention.block_size, 32);
}

TEST(ConfigOverrides, StringValuesAreTakenVerbatim) {
  TempDir dir;
  const std::string odd = dir.write("my data #1: v2.txt", "abc");
  EXPECT_EQ(parse("", {"data.path=" + odd}).data.path, odd);
  EXPECT_EQ(parse("data: {kind: mqar}\n", {"run.name='quoted name'"}).run.name, "quoted name");
  EXPECT_EQ(parse("data: {kind: mqar}\n", {"model.linear_attention.feature_map="}).model.linear_attention.feature_map,
            "");
  EXPECT_EQ(parse("data: {kind: mqar}\n", {" train.steps = 7"}).train.steps, 7);
}

TEST(ConfigOverrides, AreTypeCheckedAndNameTheOverride) {
  const std::string m = "data: {kind: mqar}\n";
  EXPECT_EQ(parse_error(m, {"model.hidden_size=abc"}),
            "--set model.hidden_size=abc: model.hidden_size: expected an integer, got 'abc'");
  EXPECT_EQ(parse_error(m, {"train.steps="}), "--set train.steps=: train.steps: expected an integer, got an empty value");
  EXPECT_EQ(parse_error(m, {"model.hiden_size=64"}),
            "--set model.hiden_size=64: unknown key 'model.hiden_size'; did you mean 'model.hidden_size'?");
  EXPECT_EQ(parse_error(m, {"modle.hidden_size=64"}),
            "--set modle.hidden_size=64: unknown key 'modle.hidden_size'; did you mean 'model.hidden_size'?");
  EXPECT_EQ(parse_error(m, {"linear_attention.variant=basic"}),
            "--set linear_attention.variant=basic: unknown key 'linear_attention.variant'; did you mean "
            "'model.linear_attention.variant'?");
  EXPECT_CONTAINS(parse_error(m, {"optim.adamw.betas=[0.9,"}), "--set optim.adamw.betas=[0.9,: the value is not valid YAML: ");
  EXPECT_EQ(parse_error(m, {"optim.adamw.betas=[0.9,1.5]"}), "--set optim.adamw.betas=[0.9,1.5]: optim.adamw.betas[1]: must be in [0, 1), got 1.5");
  // A cross-field rule broken by an override points at the override.
  EXPECT_CONTAINS(parse_error(m, {"model.num_attention_heads=3"}),
                  "--set model.num_attention_heads=3: model.hidden_size 256 is not divisible by model.num_attention_heads 3");
}

TEST(ConfigOverrides, MissingEqualsSaysHowToWriteIt) {
  EXPECT_EQ(parse_error("data: {kind: mqar}\n", {"model.hidden_size"}),
            "--set model.hidden_size: missing '='; write --set model.hidden_size=VALUE");
  EXPECT_EQ(parse_error("data: {kind: mqar}\n", {"steps"}),
            "--set steps: missing '='; write --set section.key=value, e.g. --set train.steps=50");
  EXPECT_EQ(parse_error("data: {kind: mqar}\n", {"=3"}), "--set =3: missing the key before '='; write --set section.key=value");
}

// ---- YAML out -------------------------------------------------------------------------

TEST(ConfigYaml, RoundTripsAFullConfig) {
  TempDir dir;
  const std::string tokens = dir.write("train.bin", std::string(64, '\0'));
  const RunConfig mqar = parse(full_file(""));
  expect_same(mqar, parse_run_config(config_to_yaml(mqar), {}, "config.yaml"));
  const RunConfig a = load_run_config(dir.write("run.yaml", full_file(tokens)));
  const std::string yaml = config_to_yaml(a);
  const RunConfig b = parse_run_config(yaml, {}, "config.yaml");
  expect_same(a, b);
  // A fixed point, apart from the comment line naming where it came from.
  const std::string again = config_to_yaml(b);
  EXPECT_EQ(again.substr(again.find('\n')), yaml.substr(yaml.find('\n')));
  EXPECT_EQ(again.rfind("# lintrain run file with every default filled in (from config.yaml)\n", 0), 0u);
  EXPECT_CONTAINS(yaml, "\n  linear_attention:\n    variant: retnet\n");
  EXPECT_CONTAINS(yaml, "\n    decay: 0.99\n");
  EXPECT_CONTAINS(yaml, "\n    betas: [0.9, 0.95]\n");
  EXPECT_CONTAINS(yaml, "\n  seed: 18446744073709551615\n");
  EXPECT_CONTAINS(yaml, "\nresume: none\n");
}

TEST(ConfigYaml, StringsThatLookLikeOtherTypesAreQuoted) {
  for (const std::string name : {"yes", "123", "1.5e3", "null", "~", "a: b", "#x", "say \"hi\"", "back\\slash",
                                 " lead", "", "- x", "[x]", "{x}", "ok-name_1.v2"}) {  // a TAB is refused on read
    SCOPED_TRACE(name);
    RunConfig a;
    a.data.kind = "mqar";
    a.run.name = name.empty() ? "x" : name;  // run.name must not be empty
    a.checkpoint.dir = name;
    const RunConfig b = parse(config_to_yaml(a));
    EXPECT_EQ(b.run.name, a.run.name);
    EXPECT_EQ(b.checkpoint.dir, a.checkpoint.dir);
  }
  // Floats keep every bit.
  RunConfig a;
  a.data.kind = "mqar";
  a.optim.lr = 0.1 + 0.2;
  a.optim.adamw.eps = 1.2345678901234567e-37;  // near the bottom of f32 (smaller is refused)
  a.model.rope_theta = 1e20;
  a.optim.adamw.betas = {1.0 / 3.0, 0.999999};
  const RunConfig b = parse(config_to_yaml(a));
  EXPECT_EQ(b.optim.lr, a.optim.lr);
  EXPECT_EQ(b.optim.adamw.eps, a.optim.adamw.eps);
  EXPECT_EQ(b.model.rope_theta, a.model.rope_theta);
  EXPECT_EQ(b.optim.adamw.betas, a.optim.adamw.betas);
}

TEST(ConfigYaml, FloatsAreWrittenAsYamlFloats) {
  // A '.' or a signed exponent: read as floats by YAML 1.1 (PyYAML) as well as 1.2.
  EXPECT_EQ(config::format_float(1e-5), "1.0e-5");
  EXPECT_EQ(config::format_float(1e20), "1.0e+20");
  EXPECT_EQ(config::format_float(10000.0), "10000.0");
  EXPECT_EQ(config::format_float(0.001), "0.001");
  EXPECT_EQ(config::format_float(0.0), "0.0");
  EXPECT_EQ(config::format_float(-2.5), "-2.5");
  EXPECT_EQ(config::format_float(0.1 + 0.2), "0.30000000000000004");
}

TEST(ConfigOptim, GroupRulesAndNoDecayParse) {
  const RunConfig c = parse(
      "data: {kind: mqar}\n"
      "optim:\n"
      "  name: galore\n"
      "  no_decay: [\"*norm*\", \"*.bias\"]\n"
      "  groups:\n"
      "    - {match: [\"model.layers.*.mlp.*\", \"model.layers.*.self_attn.*\"], ndim: 2}\n"
      "    - {match: \"lm_head.weight\", optimizer: lion, lr_scale: 0.5, weight_decay: 0.0}\n"
      "  galore: {rank: 64, update_proj_gap: 50, svd: randomized}\n");
  EXPECT_EQ(c.optim.no_decay, (std::vector<std::string>{"*norm*", "*.bias"}));
  ASSERT_EQ(c.optim.groups.size(), 2u);
  EXPECT_EQ(c.optim.groups[0].match.size(), 2u);
  EXPECT_EQ(c.optim.groups[0].ndim, 2);
  EXPECT_EQ(c.optim.groups[0].optimizer, "");  // = optim.name
  EXPECT_EQ(c.optim.groups[1].match, (std::vector<std::string>{"lm_head.weight"}));  // one string = a list of one
  EXPECT_EQ(c.optim.groups[1].optimizer, "lion");
  EXPECT_EQ(c.optim.groups[1].lr_scale, 0.5);
  EXPECT_EQ(c.optim.groups[1].weight_decay, 0.0);
  EXPECT_EQ(c.optim.galore.rank, 64);
  EXPECT_EQ(c.optim.galore.svd, "randomized");
  // The rules survive config_to_yaml -> parse unchanged.
  const RunConfig again = parse(config_to_yaml(c));
  EXPECT_EQ(again.optim.groups, c.optim.groups);
  EXPECT_EQ(again.optim.no_decay, c.optim.no_decay);
  // And a --set replaces the whole list.
  const RunConfig o = parse("data: {kind: mqar}\n", {"optim.groups=[{match: '*', optimizer: spam}]", "optim.no_decay=[]"});
  ASSERT_EQ(o.optim.groups.size(), 1u);
  EXPECT_EQ(o.optim.groups[0].optimizer, "spam");
  EXPECT_TRUE(o.optim.no_decay.empty());
}

TEST(ConfigOptim, LrZeroMeansTheOptimizersDefault) {
  EXPECT_EQ(optim_peak_lr(parse("data: {kind: mqar}\noptim: {name: lion}\n").optim), 1e-4);
  EXPECT_EQ(optim_peak_lr(parse("data: {kind: mqar}\noptim: {name: spam}\n").optim), 1e-3);
  EXPECT_EQ(optim_peak_lr(parse("data: {kind: mqar}\noptim: {name: lion, lr: 3.0e-4}\n").optim), 3e-4);
}

TEST(ConfigOptim, BadGroupRulesNameTheRuleAndTheFix) {
  const std::string head = "data: {kind: mqar}\noptim:\n  groups:\n";
  EXPECT_EQ(parse_error(head + "    - {mach: \"*\"}\n"),
            "run.yaml:4: optim.groups[0]: unknown key 'mach'; did you mean 'match'?; a rule has match, ndim, "
            "optimizer, lr_scale, weight_decay");
  EXPECT_EQ(parse_error(head + "    - {ndim: 2}\n"),
            "run.yaml:4: optim.groups[0]: a rule needs match (globs of tensor names, e.g. \"*\")");
  EXPECT_EQ(parse_error(head + "    - {match: \"*\", optimizer: galor}\n"),
            "run.yaml:4: optim.groups[0].optimizer: expected one of adamw, lion, galore, spam, frugal, got 'galor'; "
            "did you mean 'galore'?");
  EXPECT_EQ(parse_error(head + "    - {match: \"*\", lr_scale: 0}\n"), "run.yaml:4: optim.groups[0].lr_scale: must be > 0, got 0");
  EXPECT_EQ(parse_error(head + "    - {match: \"*\", ndim: 9}\n"),
            "run.yaml:4: optim.groups[0].ndim: expected a rank 0..8 (0 = any), got '9'");
  EXPECT_EQ(parse_error(head + "    - {match: []}\n"),
            "run.yaml:4: optim.groups[0].match: needs at least one pattern, e.g. [\"*\"]");
  EXPECT_CONTAINS(parse_error(head + "    - \"*\"\n"), "optim.groups[0]: expected a mapping with keys match");
  EXPECT_CONTAINS(parse_error("data: {kind: mqar}\noptim: {groups: {match: x}}\n"),
                  "optim.groups: expected a list of rules like [{match:");
  EXPECT_EQ(parse_error("data: {kind: mqar}\noptim: {no_decay: [[a]]}\n"),
            "run.yaml:2: optim.no_decay[0]: expected a string, got a list");
}

// ---- what the config alone refuses, and keys that do nothing in this run -------------

// FP8 is refused by the config checks (train, config and memory alike), not
// only when training starts.
// FP8 loads (issue 14), with its keys; a bad amax_compute is refused by the schema.
TEST(ConfigSupported, Fp8LoadsWithItsKeys) {
  const RunConfig c = parse("data: {kind: mqar}\n", {"precision.fp8.enabled=true", "precision.fp8.recipe=current",
                                                      "precision.fp8.amax_compute=most_recent",
                                                      "precision.fp8.exclude=[\"*down_proj*\"]"});
  EXPECT_TRUE(c.precision.fp8.enabled);
  EXPECT_EQ(c.precision.fp8.amax_compute, "most_recent");
  EXPECT_EQ(c.precision.fp8.include, std::vector<std::string>{"model.layers.*"});
  EXPECT_EQ(c.precision.fp8.exclude, std::vector<std::string>{"*down_proj*"});
  EXPECT_CONTAINS(parse_error("data: {kind: mqar}\n", {"precision.fp8.amax_compute=mean"}), "amax_compute");
}

// run.device: cuda loads in a CUDA build (the trainer checks for a GPU); a
// build without CUDA refuses it, naming the fix, from the file and --set alike.
TEST(ConfigSupported, CudaDeviceNeedsACudaBuild) {
  if (LINTRAIN_HAS_CUDA) {
    EXPECT_EQ(parse("data: {kind: mqar}\nrun: {device: cuda}\n").run.device, "cuda");
  } else {
    EXPECT_CONTAINS(parse_error("data: {kind: mqar}\nrun: {device: cuda}\n"),
                    "run.yaml:2: run.device: cuda: this lintrain was built without CUDA");
    EXPECT_CONTAINS(parse_error("data: {kind: mqar}\n", {"run.device=cuda"}), "set run.device=cpu");
  }
  EXPECT_EQ(parse("data: {kind: mqar}\n", {"run.device=cpu"}).run.device, "cpu");
}

TEST(ConfigWarnings, KeysOfUnusedSectionsWarnOncePerKey) {
  const std::string mqar = "data: {kind: mqar}\n";
  EXPECT_TRUE(parse(mqar).warnings.empty());
  // An optimizer's sub-section that neither optim.name nor a rule uses.
  const RunConfig g = parse(mqar, {"optim.galore.rank=4"});
  ASSERT_EQ(g.warnings.size(), 1u);
  EXPECT_EQ(g.warnings[0],
            "--set optim.galore.rank=4: optim.galore.rank = 4 is set but optim.name is adamw (and no optim.groups "
            "rule uses galore): it has no effect");
  // Used by name, by a rule, or (adamw) as galore's default rest: no warning.
  EXPECT_TRUE(parse(mqar, {"optim.name=galore", "optim.galore.rank=4"}).warnings.empty());
  EXPECT_TRUE(parse(mqar + "optim:\n  galore: {rank: 4}\n  groups: [{match: ['*'], ndim: 2, optimizer: galore}, "
                           "{match: ['*']}]\n").warnings.empty());
  EXPECT_TRUE(parse(mqar, {"optim.name=galore", "optim.adamw.eps=1e-7"}).warnings.empty());
  // `--set optim.name=X` on a file tuned for adamw: warned, not refused.
  const RunConfig l = parse(mqar + "optim: {adamw: {eps: 1.0e-7, betas: [0.9, 0.95]}}\n", {"optim.name=lion"});
  ASSERT_EQ(l.warnings.size(), 2u);
  EXPECT_CONTAINS(l.warnings[0], "run.yaml:");
  EXPECT_CONTAINS(l.warnings[0], "optim.adamw.betas = [0.9, 0.95] is set but optim.name is lion");
  // The schedule and fp8.
  const RunConfig s = parse(mqar, {"schedule.kind=constant", "schedule.min_lr_ratio=0.5"});
  ASSERT_EQ(s.warnings.size(), 1u);
  EXPECT_CONTAINS(s.warnings[0], "schedule.min_lr_ratio = 0.5 is set but schedule.kind is constant");
  EXPECT_TRUE(parse(mqar, {"schedule.kind=linear", "schedule.min_lr_ratio=0.5"}).warnings.empty());
  const RunConfig f = parse(mqar, {"precision.fp8.recipe=current"});
  ASSERT_EQ(f.warnings.size(), 1u);
  EXPECT_CONTAINS(f.warnings[0], "precision.fp8.recipe = current is set but precision.fp8.enabled is false");
  // A value equal to the default (what `lintrain config` writes) is not a setting.
  EXPECT_TRUE(parse(mqar, {"optim.galore.rank=128", "precision.fp8.recipe=delayed"}).warnings.empty());
  // The resolved YAML of a run loads back without warnings.
  EXPECT_TRUE(parse(config_to_yaml(parse(mqar))).warnings.empty());
}

// The f32-underflow advice names only values the key accepts.
TEST(ConfigValues, UnderflowAdviceFitsTheKey) {
  const std::string eps = parse_error("data: {kind: mqar}\n", {"model.rms_norm_eps=1e-40"});
  EXPECT_CONTAINS(eps, "underflows f32");
  EXPECT_EQ(eps.find("use 0"), std::string::npos) << eps;
  EXPECT_CONTAINS(eps, "a value >= 1.2e-38");
}

