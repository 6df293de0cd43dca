// The rules between keys (and the data file), checked once after the file and
// every override are applied, so `--set` can fix a file that breaks one.
// Single-key ranges and choices are the table's job (schema.cpp), not repeated
// here. World size against parallel.sequence x parallel.data is checked at
// launch, where the world is known.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "runtime/config/parse.h"
#include "runtime/data/megatron_loader.h"
#include "runtime/error.h"
#include "runtime/io/hf_config.h"
#include "runtime/io/input_file.h"

namespace lintrain::config {
namespace {

// "248 or 252": the multiples of `step` nearest to `x`, for "use a multiple of" hints.
std::string nearby_multiples(int x, int step) {
  const int below = x / step * step, above = below + step;
  return below > 0 ? str_cat(below, " or ", above) : std::to_string(above);
}

std::string divisors_text(int n) {
  std::string out;
  for (int d = 1; d <= n; ++d)
    if (n % d == 0) out += str_cat(out.empty() ? "" : ", ", d);
  return out;
}

void check_model(const ModelConfig& m, const KeyOrigins& o, bool user_file) {
  const int H = m.num_attention_heads, C = m.hidden_size;
  if (C % H != 0)
    fail(o.where({"model.hidden_size", "model.num_attention_heads"}),
         str_cat("model.hidden_size ", C, " is not divisible by model.num_attention_heads ", H,
                 "; use a hidden_size of ", nearby_multiples(C, 2 * H), " (even head_dim) or another head count"));
  if (m.num_key_value_heads > 0 && H % m.num_key_value_heads != 0)
    fail(o.where({"model.num_key_value_heads", "model.num_attention_heads"}),
         str_cat("model.num_attention_heads ", H, " is not divisible by model.num_key_value_heads ",
                 m.num_key_value_heads, "; use one of ", H <= 1024 ? divisors_text(H) : "its divisors",
                 " (or 0 for one kv head per query head)"));
  const int P = static_cast<int>(m.layer_pattern.size());
  // The default pattern simply repeats or stops early; one the user wrote
  // with more letters than layers cannot be what they meant. A recorded
  // config (a checkpoint's, !user_file) lists every key, the default pattern
  // too, and was checked when its run started.
  if (P > m.num_hidden_layers && user_file && o.given("model.layer_pattern"))
    fail(o.where({"model.layer_pattern", "model.num_hidden_layers"}),
         str_cat("model.layer_pattern '", m.layer_pattern, "' has ", P, " letters but model.num_hidden_layers is ",
                 m.num_hidden_layers, ", so layers ", m.num_hidden_layers + 1, "..", P,
                 " of the pattern would never exist; shorten the pattern to '",
                 m.layer_pattern.substr(0, static_cast<size_t>(m.num_hidden_layers)), "' or raise num_hidden_layers to ",
                 P));
  if (m.head_dim() % 2 != 0)
    fail(o.where({"model.hidden_size", "model.num_attention_heads"}),
         str_cat("head dimension model.hidden_size / model.num_attention_heads = ", C, " / ", H, " = ", m.head_dim(),
                 " must be even for RoPE; change hidden_size or num_attention_heads"));
}

void check_data_path(const DataConfig& d, const KeyOrigins& o) {
  if (d.path.empty())
    fail(o.where({"data.kind", "data.path"}),
         str_cat("data.path is empty; data.kind ", d.kind, " needs ",
                 d.kind == "text" ? "a text file or a directory of them" : "a token file",
                 " (or use data.kind: mqar, which needs no data)"));
  const std::string where = o.where({"data.path"});
  struct stat st;
  if (::stat(d.path.c_str(), &st) != 0) {
    const int err = errno;
    fail(where, str_cat(input_error_text(d.path, "data.path", err), err == ENOENT ? ", or use data.kind: mqar" : ""));
  }
  const bool dir_ok = d.kind == "text" && S_ISDIR(st.st_mode);
  if (!S_ISREG(st.st_mode) && !dir_ok)
    fail(where, str_cat("data.path '", d.path, "' is ", non_regular_kind(st.st_mode), "; data.kind ", d.kind,
                        d.kind == "text" ? " reads a regular text file or a directory of them"
                                         : " reads one regular token file"));
  if (dir_ok && ::access(d.path.c_str(), R_OK | X_OK) != 0)
    fail(where, input_error_text(d.path, "data.path", errno));
}

// The data keys that only some kinds read. Set away from its default under
// another kind, a key would be ignored without a word (a data.path next to
// data.kind mqar, say), so it is refused. A value equal to the default is
// fine: `lintrain config` writes every key.
void check_kind_keys(const RunConfig& c, const KeyOrigins& o) {
  struct KindKey {
    const char* key;
    std::vector<std::string> kinds;
  };
  static const std::vector<KindKey> table = {{"data.path", {"text", "tokens", "megatron"}},
                                             {"data.token_dtype", {"tokens"}},
                                             {"data.valid_fraction", {"text", "tokens", "megatron"}},
                                             {"data.blend", {"megatron"}},
                                             {"data.eod_token", {"megatron"}},
                                             {"data.add_eod", {"megatron"}},
                                             {"data.mqar_pairs", {"mqar"}},
                                             {"data.mqar_queries", {"mqar"}},
                                             {"data.tokenizer", {"text", "tokens", "megatron"}}};
  static const RunConfig defaults;
  for (const KindKey& k : table) {
    if (std::find(k.kinds.begin(), k.kinds.end(), c.data.kind) != k.kinds.end()) continue;
    const KeySpec* spec = find_key(k.key);
    if (spec->read(c) == spec->read(defaults)) continue;
    std::string kinds = k.kinds[0];
    for (size_t i = 1; i < k.kinds.size(); ++i) kinds += str_cat(i + 1 == k.kinds.size() ? " or " : ", ", k.kinds[i]);
    fail(o.where({k.key, "data.kind"}),
         str_cat(k.key, " is ", spec->format(spec->read(c)), ", but data.kind ", c.data.kind,
                 c.data.kind == "mqar" ? " generates its sequences and" : "", " does not read it (only data.kind ",
                 kinds, " does); remove ", k.key, " or use data.kind ", kinds));
  }
}

// data.kind megatron: data.path or data.blend (parsed by the loader's own
// reader of it), each prefix's .bin and .idx present, an EOD in the vocabulary.
void check_megatron(const RunConfig& c, const KeyOrigins& o, bool check_files) {
  const DataConfig& d = c.data;
  std::vector<BlendPart> parts;
  try {
    parts = megatron_blend(d);
  } catch (const ConfigError& e) {
    std::string what = e.what();
    if (what.rfind("[data] ", 0) == 0) what.erase(0, 7);  // fail() says where instead
    fail(o.where({"data.path", "data.blend", "data.kind"}), what);
  }
  if (d.valid_fraction <= 0.0)
    fail(o.where({"data.valid_fraction", "data.kind"}),
         "data.valid_fraction is 0, but evaluation needs held-out documents; use e.g. 0.05");
  if (megatron_eod_token(d, c.model.vocab_size) >= c.model.vocab_size)
    fail(o.where({"data.eod_token", "model.vocab_size"}),
         str_cat("data.eod_token ", d.eod_token, " is not below model.vocab_size ", c.model.vocab_size,
                 "; use the tokenizer's end-of-document id (scripts/prepare_data.py prints it) or -1 for the last id"));
  if (!check_files) return;
  for (const BlendPart& p : parts) {
    for (const char* ext : {".idx", ".bin"}) {
      const std::string file = p.prefix + ext;
      struct stat st;
      if (::stat(file.c_str(), &st) != 0) {
        const int err = errno;
        fail(o.where({d.blend.empty() ? "data.path" : "data.blend"}),
             str_cat(input_error_text(file, str_cat(p.what, " file"), err),
                     " (data.kind megatron reads <prefix>.bin and <prefix>.idx; give the prefix without the extension)"));
      }
      if (!S_ISREG(st.st_mode))
        fail(o.where({d.blend.empty() ? "data.path" : "data.blend"}),
             str_cat(p.what, " file '", file, "' is ", non_regular_kind(st.st_mode), ", not a regular file"));
    }
  }
}

void check_data(const RunConfig& c, const KeyOrigins& o, bool check_files) {
  const DataConfig& d = c.data;
  if (check_files) check_kind_keys(c, o);
  if (d.kind == "text" && c.model.vocab_size < 256)
    fail(o.where({"model.vocab_size", "data.kind"}),
         str_cat("model.vocab_size ", c.model.vocab_size, " is too small for data.kind text, whose byte-level ",
                 "tokens need at least 256"));
  if (d.kind == "text" || d.kind == "tokens") {
    if (check_files) check_data_path(d, o);
    // Evaluation always runs at the end of training and reads the held-out split.
    if (d.valid_fraction <= 0.0)
      fail(o.where({"data.valid_fraction", "data.kind"}),
           str_cat("data.valid_fraction is 0, but evaluation needs held-out data; use e.g. 0.05"));
  }
  if (d.kind == "megatron") check_megatron(c, o, check_files);
  if (check_files && !d.tokenizer.empty()) {
    struct stat st;
    if (::stat(d.tokenizer.c_str(), &st) != 0)
      fail(o.where({"data.tokenizer"}), str_cat(input_error_text(d.tokenizer, "data.tokenizer", errno),
                                                " (a Hugging Face tokenizer.json; \"\" exports none)"));
    if (!S_ISREG(st.st_mode))
      fail(o.where({"data.tokenizer"}), str_cat("data.tokenizer '", d.tokenizer, "' is ", non_regular_kind(st.st_mode),
                                                "; give a tokenizer.json file"));
    if (::access(d.tokenizer.c_str(), R_OK) != 0)
      fail(o.where({"data.tokenizer"}), input_error_text(d.tokenizer, "data.tokenizer", errno));
    if (const std::string problem = tokenizer_json_problem(d.tokenizer); !problem.empty())
      fail(o.where({"data.tokenizer"}), str_cat("data.tokenizer ", problem));
  }
  if (d.kind == "mqar") {
    // The layout of runtime/data/mqar.h: P key-value pairs, then Q query slots.
    const int64_t P = d.mqar_pairs, Q = d.mqar_queries > 0 ? d.mqar_queries : d.mqar_pairs;
    if (d.seq_len < 2 * P + Q)
      fail(o.where({"data.seq_len", "data.mqar_pairs", "data.mqar_queries", "data.kind"}),
           str_cat("data.seq_len ", d.seq_len, " is too short for mqar with ", P, " pairs and ", Q,
                   " queries: it needs 2 * pairs + queries = ", 2 * P + Q,
                   "; raise data.seq_len or lower data.mqar_pairs"));
    if (c.model.vocab_size < 2 * P + 2)
      fail(o.where({"model.vocab_size", "data.mqar_pairs", "data.kind"}),
           str_cat("model.vocab_size ", c.model.vocab_size, " is too small for mqar with ", P,
                   " pairs: distinct keys and values need at least 2 * pairs + 2 = ", 2 * P + 2));
  }
}

// A warm-up longer than the run means the learning rate never reaches
// optim.lr. Shortening a run file's run with --set train.steps=N (a quick try
// of it) keeps the file's warm-up and is allowed.
void check_schedule(const RunConfig& c, const KeyOrigins& o) {
  const int warmup = c.schedule.warmup_steps, steps = c.train.steps;
  if (warmup <= steps || !o.given("schedule.warmup_steps")) return;
  if (o.overridden_after("train.steps", "schedule.warmup_steps")) return;
  fail(o.where({"schedule.warmup_steps", "train.steps"}),
       str_cat("schedule.warmup_steps ", warmup, " is more than train.steps ", steps,
               ", so the learning rate would never reach optim.lr; use a warm-up of at most ", steps,
               " steps or raise train.steps"));
}

// Above this peak learning rate (optim.lr times a rule's lr_scale) no update
// rule here trains: Adam-type and sign updates move every weight by about
// the lr each step, and weights start near model.initializer_range (0.02).
// Real runs stay below 0.1; the bound leaves a wide margin.
constexpr double kMaxPeakLr = 10.0;

void check_learning_rates(const RunConfig& c, const KeyOrigins& o) {
  const double lr = optim_peak_lr(c.optim);
  const std::string lr_text = c.optim.lr > 0 ? str_cat("optim.lr ", c.optim.lr)
                                             : str_cat("the default lr of ", c.optim.name, " ", lr);
  if (lr > kMaxPeakLr)
    fail(o.where({"optim.lr"}), str_cat("optim.lr ", c.optim.lr, " is above ", kMaxPeakLr,
                                        ", where no optimizer trains (real runs use 1e-4 to 1e-2); lower optim.lr"));
  for (size_t i = 0; i < c.optim.groups.size(); ++i) {
    const double scale = c.optim.groups[i].lr_scale;
    if (lr * scale > kMaxPeakLr)
      fail(o.where({"optim.groups", "optim.lr"}),
           str_cat("optim.groups[", i, "].lr_scale ", scale, " times ", lr_text, " is a learning rate of ", lr * scale,
                   ", above ", kMaxPeakLr, " where no optimizer trains; lower the rule's lr_scale"));
  }
}

// What lintrain refuses from the config alone, whichever command reads it
// (train, config, memory), so `lintrain config` never passes a run that
// `train` then refuses.
void check_supported(const RunConfig& c, const KeyOrigins& o) {
  // Whether a GPU is there is the trainer's check (config and memory run anywhere).
  if (c.run.device == "cuda" && !LINTRAIN_HAS_CUDA)
    fail(o.where({"run.device"}),
         "run.device: cuda: this lintrain was built without CUDA (no nvcc was found when it was configured); "
         "rebuild on a machine with the CUDA toolkit (cmake -DLINTRAIN_CUDA=ON), or set run.device=cpu");
  const bool has_linear = c.model.layer_pattern.find('L') != std::string::npos;
  if (c.run.device == "cuda" && has_linear && c.model.linear_attention.variant == "gla")
    fail(o.where({"model.linear_attention.variant", "run.device"}),
         "model.linear_attention.variant: gla has no CUDA kernels yet (gated linear attention runs on the CPU "
         "backend only); set run.device=cpu, or pick variant basic | lightning | retnet for a GPU run");
}

// Keys the user gave (run file or --set) away from their default in a
// section this run never reads: the sub-section of an optimizer that neither
// optim.name nor any optim.groups rule uses, schedule.min_lr_ratio under
// kind constant, precision.fp8.* with FP8 off. Not refused: `--set
// optim.name=X` on a file tuned for another optimizer is a normal way to
// compare optimizers. A value equal to the default is fine (`lintrain config`
// writes every key). One warning line per key.
std::vector<std::string> unused_key_warnings(const RunConfig& c, const KeyOrigins& o) {
  const RunConfig defaults;
  // Why the key's section is unused, "" when it is used.
  auto unused_because = [&](const std::string& name) -> std::string {
    for (const char* opt : {"adamw", "lion", "galore", "spam", "frugal"}) {
      if (name.rfind(str_cat("optim.", opt, "."), 0) != 0) continue;
      if (c.optim.name == opt) return "";
      for (const ParamGroupRule& r : c.optim.groups)
        if (r.optimizer == opt) return "";
      // Without rules, galore and frugal send what they do not project to
      // adamw (optim/param_groups.cpp effective_group_rules).
      const bool default_rest = c.optim.groups.empty() && (c.optim.name == "galore" || c.optim.name == "frugal");
      if (default_rest && std::string(opt) == "adamw") return "";
      return str_cat("optim.name is ", c.optim.name, " (and no optim.groups rule uses ", opt, ")");
    }
    if (name == "schedule.min_lr_ratio" && c.schedule.kind == "constant") return "schedule.kind is constant";
    if (name.rfind("precision.fp8.", 0) == 0 && name != "precision.fp8.enabled" && !c.precision.fp8.enabled)
      return "precision.fp8.enabled is false";
    return "";
  };
  std::vector<std::string> out;
  for (const KeySpec& k : run_config_keys()) {
    if (!o.given(k.name)) continue;
    const std::string value = k.format(k.read(c));
    if (value == k.format(k.read(defaults))) continue;
    const std::string why = unused_because(k.name);
    if (!why.empty())
      out.push_back(str_cat(o.where({k.name.c_str()}), ": ", k.name, " = ", value, " is set but ", why,
                            ": it has no effect"));
  }
  return out;
}

}  // namespace

}  // namespace lintrain::config

namespace lintrain {
double optim_default_lr(const std::string& name) { return name == "lion" ? 1e-4 : 1e-3; }
}  // namespace lintrain

namespace lintrain::config {

std::vector<std::string> validate_run_config(const RunConfig& c, const KeyOrigins& o, bool check_files) {
  check_supported(c, o);
  check_model(c.model, o, check_files);
  check_data(c, o, check_files);
  if (check_files) {  // a recorded config was checked when its run started
    check_schedule(c, o);
    check_learning_rates(c, o);
  }
  if (c.data.seq_len % c.parallel.sequence != 0)
    fail(o.where({"data.seq_len", "parallel.sequence"}),
         str_cat("data.seq_len ", c.data.seq_len, " is not divisible by parallel.sequence ", c.parallel.sequence,
                 " (each sequence-parallel rank takes an equal chunk); use a seq_len of ",
                 nearby_multiples(c.data.seq_len, c.parallel.sequence)));
  // A recorded config lists every key; its run was warned when it started.
  return check_files ? unused_key_warnings(c, o) : std::vector<std::string>{};
}

}  // namespace lintrain::config
