// The one table of run-file keys (see schema.h). To add an option: add the
// member with its default to config.h, add one row here, and paste the new
// `lintrain config --doc` output into the README.
#include "runtime/config/schema.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <unordered_map>

#include "runtime/error.h"

namespace lintrain::config {
namespace {

// ---- member <-> Value -----------------------------------------------------------
Value to_value(int x) { return int64_t{x}; }
Value to_value(uint64_t x) { return x; }
Value to_value(double x) { return x; }
Value to_value(bool x) { return x; }
Value to_value(const std::string& x) { return x; }
Value to_value(const std::vector<double>& x) { return x; }
Value to_value(const std::vector<std::string>& x) { return x; }
Value to_value(const std::vector<ParamGroupRule>& x) { return x; }

// The parser has range-checked the value for the key's type before writing.
void from_value(int& m, const Value& v) { m = static_cast<int>(std::get<int64_t>(v)); }
void from_value(uint64_t& m, const Value& v) { m = std::get<uint64_t>(v); }
void from_value(double& m, const Value& v) { m = std::get<double>(v); }
void from_value(bool& m, const Value& v) { m = std::get<bool>(v); }
void from_value(std::string& m, const Value& v) { m = std::get<std::string>(v); }
void from_value(std::vector<double>& m, const Value& v) { m = std::get<std::vector<double>>(v); }
void from_value(std::vector<std::string>& m, const Value& v) { m = std::get<std::vector<std::string>>(v); }
void from_value(std::vector<ParamGroupRule>& m, const Value& v) { m = std::get<std::vector<ParamGroupRule>>(v); }

// LT_KEY(model.hidden_size) expands to the key's name and its read and write
// accessors, so a key's name and the member it writes are spelled once.
#define LT_KEY(path)                                          \
  #path, [](const RunConfig& c) { return to_value(c.path); }, \
      [](RunConfig& c, const Value& v) { from_value(c.path, v); }

using Reader = Value (*)(const RunConfig&);
using Writer = void (*)(RunConfig&, const Value&);

KeySpec make(const char* name, Reader read, Writer write, KeyType type, const char* meaning) {
  KeySpec k;
  k.name = name;
  k.type = type;
  k.read = read;
  k.write = write;
  k.meaning = meaning;
  return k;
}

constexpr double kInf = std::numeric_limits<double>::infinity();
NumberRange at_least(double lo) { return {lo, kInf, false, false}; }
NumberRange above(double lo) { return {lo, kInf, true, false}; }
NumberRange closed(double lo, double hi) { return {lo, hi, false, false}; }
NumberRange closed_open(double lo, double hi) { return {lo, hi, false, true}; }
NumberRange open_closed(double lo, double hi) { return {lo, hi, true, false}; }

KeySpec int_key(const char* n, Reader r, Writer w, NumberRange range, const char* meaning) {
  KeySpec k = make(n, r, w, KeyType::kInt, meaning);
  k.range = range;
  return k;
}
KeySpec uint64_key(const char* n, Reader r, Writer w, const char* meaning) {
  KeySpec k = make(n, r, w, KeyType::kUInt64, meaning);
  k.range = at_least(0);
  return k;
}
KeySpec float_key(const char* n, Reader r, Writer w, NumberRange range, const char* meaning) {
  KeySpec k = make(n, r, w, KeyType::kFloat, meaning);
  k.range = range;
  return k;
}
KeySpec bool_key(const char* n, Reader r, Writer w, const char* meaning) {
  return make(n, r, w, KeyType::kBool, meaning);
}
KeySpec string_key(const char* n, Reader r, Writer w, StringCheck check, const char* meaning) {
  KeySpec k = make(n, r, w, KeyType::kString, meaning);
  k.check = check;
  return k;
}
KeySpec enum_key(const char* n, Reader r, Writer w, std::vector<std::string> choices, const char* meaning) {
  KeySpec k = make(n, r, w, KeyType::kEnum, meaning);
  k.choices = std::move(choices);
  return k;
}
KeySpec tristate_key(const char* n, Reader r, Writer w, const char* meaning) {
  return make(n, r, w, KeyType::kTriState, meaning);
}
KeySpec float_list_key(const char* n, Reader r, Writer w, size_t len, NumberRange each, const char* meaning) {
  KeySpec k = make(n, r, w, KeyType::kFloatList, meaning);
  k.list_len = len;
  k.range = each;
  return k;
}
KeySpec word_or_float_key(const char* n, Reader r, Writer w, std::vector<std::string> words, NumberRange range,
                          const char* meaning) {
  KeySpec k = make(n, r, w, KeyType::kWordOrFloat, meaning);
  k.choices = std::move(words);
  k.range = range;
  return k;
}

std::vector<std::string> optimizer_names() { return {"adamw", "lion", "galore", "spam", "frugal"}; }

KeySpec string_list_key(const char* n, Reader r, Writer w, const char* meaning) {
  return make(n, r, w, KeyType::kStringList, meaning);
}
KeySpec group_rules_key(const char* n, Reader r, Writer w, const char* meaning) {
  KeySpec k = make(n, r, w, KeyType::kGroupRules, meaning);
  k.choices = optimizer_names();
  return k;
}

// ---- checks of single string values ----------------------------------------------
// A value of spaces only reads as empty in every listing (a run named "  ", a
// directory named three spaces), so it is refused like the empty string.
std::string non_empty(const std::string& s) {
  if (s.empty()) return "must not be empty";
  return s.find_first_not_of(' ') == std::string::npos ? "must not be only spaces" : "";
}

std::string layer_pattern_check(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("LS") == std::string::npos) return "";
  return "must be a non-empty string of L (linear attention) and S (softmax attention), e.g. LLLS";
}

std::string service_check(const std::string& s) {
  if (s == "none" || s == "local") return "";
  const size_t colon = s.rfind(':');
  if (colon != std::string::npos && colon > 0 && colon + 1 < s.size() && colon + 6 >= s.size()) {
    const std::string port = s.substr(colon + 1);
    if (port.find_first_not_of("0123456789") == std::string::npos) {
      const long p = std::strtol(port.c_str(), nullptr, 10);
      if (p >= 1 && p <= 65535) return "";
    }
  }
  return "must be none, local or HOST:PORT with a port in 1..65535, e.g. ckpt-host:50051";
}

std::string resume_check(const std::string& s) {
  return s.empty() ? "must be auto, none or the path of a checkpoint" : "";
}

std::vector<KeySpec> build_table() {
  return {
      string_key(LT_KEY(run.name), non_empty, "name of the run, shown in logs and metrics"),
      string_key(LT_KEY(run.out_dir), non_empty,
                 "output directory (metrics.jsonl, config.yaml, weights); relative to the working directory"),
      uint64_key(LT_KEY(run.seed), "seed of every random stream: initialisation, data order, MQAR sequences"),
      int_key(LT_KEY(run.threads), at_least(0),
              "OpenMP/BLAS threads per rank; 0 = the node's cores divided by the ranks on it"),
      enum_key(LT_KEY(run.device), {"cpu", "cuda"},
               "where each rank computes: cpu, or cuda (one GPU per rank, chosen by its local rank)"),
      bool_key(LT_KEY(run.tensorboard),
               "TensorBoard event files (events.out.tfevents.*) in out_dir, written by rank 0 in the background"),
      float_key(LT_KEY(run.tensorboard_flush_s), above(0),
                "seconds between two writes of the TensorBoard events (and at the end of the run)"),
      float_key(LT_KEY(run.peak_tflops), at_least(0),
                "peak TFLOP/s of one rank, the denominator of the reported MFU; 0 = a known GPU's dense BF16 peak, "
                "or on the CPU its FP32 GEMM rate measured at start-up"),

      int_key(LT_KEY(model.vocab_size), at_least(1), "vocabulary size; at least 256 for data.kind text (bytes)"),
      int_key(LT_KEY(model.hidden_size), at_least(1), "width of the residual stream; a multiple of the heads"),
      int_key(LT_KEY(model.num_hidden_layers), at_least(1), "number of layers"),
      int_key(LT_KEY(model.num_attention_heads), at_least(1),
              "query heads per layer; head_dim = hidden_size / heads must be even (RoPE)"),
      int_key(LT_KEY(model.num_key_value_heads), at_least(0),
              "key/value heads (grouped-query attention), dividing the query heads; 0 = num_attention_heads"),
      int_key(LT_KEY(model.intermediate_size), at_least(1), "hidden width of the SwiGLU MLP"),
      string_key(LT_KEY(model.layer_pattern), layer_pattern_check,
                 "attention of each layer, L linear or S softmax; the pattern repeats over the layers"),
      enum_key(LT_KEY(model.linear_attention.variant), {"basic", "lightning", "retnet", "gla"},
               "linear-attention variant; sets the defaults of feature_map, decay, output_norm, output_gate "
               "(gla: gated linear attention, a data-dependent forget gate per token and key dimension)"),
      int_key(LT_KEY(model.linear_attention.gate_rank), at_least(1),
              "gla: inner width of the low-rank forget-gate projection x W_down^T W_up^T"),
      float_key(LT_KEY(model.linear_attention.gate_tau), above(0),
                "gla: temperature tau of the forget gate sigmoid(.)^(1/tau)"),
      int_key(LT_KEY(model.linear_attention.block_size), at_least(1),
              "block length of the blockwise (Lightning-2) kernel"),
      enum_key(LT_KEY(model.linear_attention.feature_map), {"", "identity", "elu1", "silu", "relu"},
               "feature map on q and k; \"\" = the variant's (basic elu1, lightning silu, retnet and gla identity)"),
      word_or_float_key(LT_KEY(model.linear_attention.decay), {"", "none", "tnl", "retnet"}, open_closed(0, 1),
                        "per-head decay: none, tnl (TransNormerLLM), retnet, or one lambda for all heads; "
                        "\"\" = the variant's (basic none, lightning tnl, retnet retnet; gla takes none only)"),
      tristate_key(LT_KEY(model.linear_attention.output_norm),
                   "RMSNorm of each head's output; -1 = the variant's (on for every variant)"),
      tristate_key(LT_KEY(model.linear_attention.output_gate),
                   "output gate o * silu(x W_g); -1 = the variant's (basic off, lightning, retnet and gla on)"),
      float_key(LT_KEY(model.rms_norm_eps), above(0), "epsilon of every RMSNorm"),
      float_key(LT_KEY(model.rope_theta), above(0), "RoPE base frequency of the softmax-attention layers"),
      bool_key(LT_KEY(model.tie_word_embeddings), "share the embedding matrix with the output projection"),
      float_key(LT_KEY(model.initializer_range), above(0), "standard deviation of the initial weights"),

      enum_key(LT_KEY(data.kind), {"mqar", "text", "tokens", "megatron"},
               "training data: mqar (synthetic recall), text (bytes of data.path), tokens (token ids in data.path), "
               "megatron (Megatron .bin/.idx indexed datasets)"),
      string_key(LT_KEY(data.path), nullptr,
                 "text: a file or a directory of files; tokens: a token file; megatron: the prefix of a .bin/.idx "
                 "pair; relative to the working directory"),
      string_list_key(LT_KEY(data.blend),
                      "megatron, instead of data.path: [weight, prefix, weight, prefix, ...] (Megatron's --data-path "
                      "form); weights are relative"),
      int_key(LT_KEY(data.eod_token), at_least(-1),
              "megatron: end-of-document token id; -1 = model.vocab_size - 1 (what scripts/prepare_data.py writes)"),
      bool_key(LT_KEY(data.add_eod),
               "megatron: put data.eod_token after each document; false for files whose documents already end in one"),
      string_key(LT_KEY(data.tokenizer), nullptr,
                 "a Hugging Face tokenizer.json the export copies beside the weights (with the "
                 "tokenizer_config.json beside it); \"\" = megatron: the tokenizer.json beside the (first) dataset, "
                 "where scripts/prepare_data.py writes it, if any"),
      enum_key(LT_KEY(data.token_dtype), {"u16", "u32"},
               "tokens: width of each id in the file (raw little-endian array or llm.c shard)"),
      int_key(LT_KEY(data.seq_len), at_least(1), "tokens per sequence; a multiple of parallel.sequence"),
      float_key(LT_KEY(data.valid_fraction), closed_open(0, 1),
                "text, tokens: fraction of the data held out for evaluation; megatron: of the documents"),
      int_key(LT_KEY(data.mqar_pairs), at_least(1), "mqar: key-value pairs per sequence"),
      int_key(LT_KEY(data.mqar_queries), at_least(0), "mqar: queries per sequence; 0 = mqar_pairs"),

      int_key(LT_KEY(train.steps), at_least(1), "optimizer steps"),
      int_key(LT_KEY(train.micro_batch), at_least(1), "sequences per data-parallel group in one forward/backward"),
      int_key(LT_KEY(train.grad_accum), at_least(1), "micro-batches whose gradients are summed per optimizer step"),
      float_key(LT_KEY(train.grad_clip), at_least(0), "clip the global gradient norm to this; 0 = off"),
      int_key(LT_KEY(train.log_every), at_least(1), "print a progress line every N steps (and at the last)"),
      int_key(LT_KEY(train.eval_every), at_least(0), "evaluate every N steps; 0 = only at the end"),
      int_key(LT_KEY(train.eval_batches), at_least(1), "batches per evaluation"),
      int_key(LT_KEY(train.export_every), at_least(0), "write model.safetensors every N steps; 0 = only at the end"),
      int_key(LT_KEY(train.max_bad_steps), at_least(1),
              "stop after this many steps in a row whose loss or gradient norm is not finite (each one's update is skipped)"),

      int_key(LT_KEY(parallel.sequence), at_least(1),
              "sequence-parallel (LASP-2) ranks per group; world size = sequence x data"),
      int_key(LT_KEY(parallel.data), at_least(1), "data-parallel groups"),
      float_key(LT_KEY(parallel.timeout_s), at_least(0),
                "a collective still waiting after this many seconds aborts the job, naming the ranks that do not "
                "answer; 0 = off"),

      enum_key(LT_KEY(precision.compute), {"fp32", "bf16"}, "dtype of activations and matmul inputs"),
      bool_key(LT_KEY(precision.fp8.enabled), "FP8 matmuls in the linear layers"),
      enum_key(LT_KEY(precision.fp8.recipe), {"delayed", "current", "blockwise"},
               "FP8 scaling: delayed (from the amax history), current (this step's amax), blockwise (per block)"),
      enum_key(LT_KEY(precision.fp8.format), {"hybrid", "e4m3"},
               "hybrid: e4m3 forward and e5m2 gradients; e4m3: e4m3 for both"),
      int_key(LT_KEY(precision.fp8.amax_history_len), at_least(1), "delayed recipe: steps of amax history kept"),
      enum_key(LT_KEY(precision.fp8.amax_compute), {"max", "most_recent"},
               "delayed recipe: the amax a scale comes from: max over the history, or the latest step's"),
      int_key(LT_KEY(precision.fp8.margin), at_least(0), "FP8 scales leave 2^margin of headroom"),
      string_list_key(LT_KEY(precision.fp8.include),
                      "globs of block linear tensors whose GEMMs run in FP8 (the embedding, head, norms and "
                      "attention cores never do)"),
      string_list_key(LT_KEY(precision.fp8.exclude), "globs of tensors taken out of precision.fp8.include"),
      float_key(LT_KEY(precision.fp8.warn_saturated), at_least(0),
                "warn when the saturated fraction of an FP8 tensor class (weights, activations, gradients) in a "
                "step passes this"),

      enum_key(LT_KEY(optim.name), optimizer_names(),
               "optimizer of the run; tensors optim.groups assigns elsewhere use theirs"),
      float_key(LT_KEY(optim.lr), at_least(0),
                "peak learning rate; the schedule scales it; 0 = the optimizer's default (lion 1e-4, others 1e-3)"),
      float_key(LT_KEY(optim.weight_decay), at_least(0), "decoupled weight decay (tensors in optim.no_decay get none)"),
      string_list_key(LT_KEY(optim.no_decay),
                      "globs of tensor names that never get weight decay ('*' any run, '?' one character)"),
      group_rules_key(LT_KEY(optim.groups),
                      "parameter groups: a tensor takes the first rule whose match globs and ndim fit; "
                      "[] = the defaults of optim.name (see Optimizers)"),
      float_list_key(LT_KEY(optim.adamw.betas), 2, closed_open(0, 1), "AdamW decay rates of the two moments"),
      float_key(LT_KEY(optim.adamw.eps), above(0), "AdamW epsilon added to the denominator"),
      float_list_key(LT_KEY(optim.lion.betas), 2, closed_open(0, 1),
                     "Lion: b1 interpolates the update direction, b2 decays the momentum"),
      int_key(LT_KEY(optim.galore.rank), at_least(1), "GaLore: rank r of the gradient subspace (at most min(rows, cols))"),
      int_key(LT_KEY(optim.galore.update_proj_gap), at_least(1), "GaLore: steps between projector refreshes"),
      float_key(LT_KEY(optim.galore.scale), above(0), "GaLore: alpha, multiplies the projected-back update"),
      enum_key(LT_KEY(optim.galore.svd), {"exact", "randomized"},
               "GaLore: projector from an exact SVD (LAPACK) or a randomized one (subspace iteration)"),
      int_key(LT_KEY(optim.galore.svd_oversample), closed(0, 4096), "GaLore randomized SVD: extra sketch columns"),
      int_key(LT_KEY(optim.galore.svd_power_iters), closed(0, 64), "GaLore randomized SVD: subspace iterations"),
      float_list_key(LT_KEY(optim.galore.betas), 2, closed_open(0, 1), "GaLore: Adam decay rates in the subspace"),
      float_key(LT_KEY(optim.galore.eps), above(0), "GaLore: Adam epsilon"),
      float_list_key(LT_KEY(optim.spam.betas), 2, closed_open(0, 1), "SPAM: Adam decay rates"),
      float_key(LT_KEY(optim.spam.eps), above(0), "SPAM: Adam epsilon"),
      int_key(LT_KEY(optim.spam.reset_interval), at_least(0), "SPAM: zero both moments every N steps; 0 = never"),
      int_key(LT_KEY(optim.spam.warmup), at_least(0), "SPAM: steps of cosine warm-up (0.01 to 1) of the update after a reset"),
      float_key(LT_KEY(optim.spam.threshold), at_least(0),
                "SPAM: theta; clip gradient entries with g^2 > theta * v to sign(g) sqrt(theta v); 0 = off"),
      int_key(LT_KEY(optim.spam.clip_delay), at_least(0), "SPAM: steps after each reset without spike clipping"),
      float_key(LT_KEY(optim.spam.density), open_closed(0, 1),
                "SPAM: fraction of each matrix's entries with momentum (random, redrawn at resets); 1 = dense"),
      float_key(LT_KEY(optim.frugal.density), open_closed(0, 1), "FRUGAL: rho, state-full fraction of each projected weight"),
      int_key(LT_KEY(optim.frugal.update_gap), at_least(1), "FRUGAL: steps between subspace changes (the state is reset)"),
      enum_key(LT_KEY(optim.frugal.proj_type), {"svd", "random", "randk", "blockwise"},
               "FRUGAL subspace: svd (top singular vectors), random (orthogonal), randk (random columns), "
               "blockwise (random whole tensors)"),
      enum_key(LT_KEY(optim.frugal.state_free), {"signsgd", "sgd", "none"}, "FRUGAL: update of the state-free part"),
      float_key(LT_KEY(optim.frugal.inactive_lr_scale), at_least(0),
                "FRUGAL: learning-rate multiplier of the state-free part"),
      float_list_key(LT_KEY(optim.frugal.betas), 2, closed_open(0, 1), "FRUGAL: AdamW decay rates of the state-full part"),
      float_key(LT_KEY(optim.frugal.eps), above(0), "FRUGAL: AdamW epsilon of the state-full part"),

      enum_key(LT_KEY(schedule.kind), {"cosine", "constant", "linear"},
               "learning-rate decay after warm-up, from optim.lr to optim.lr * min_lr_ratio"),
      int_key(LT_KEY(schedule.warmup_steps), at_least(0), "steps of linear warm-up to optim.lr"),
      float_key(LT_KEY(schedule.min_lr_ratio), closed(0, 1),
                "final learning rate as a fraction of optim.lr (cosine, linear)"),

      int_key(LT_KEY(checkpoint.every), at_least(0), "save a checkpoint every N steps; 0 = never"),
      int_key(LT_KEY(checkpoint.keep), at_least(1), "complete checkpoints kept; older ones are deleted"),
      bool_key(LT_KEY(checkpoint.async), "save in the background while training goes on"),
      string_key(LT_KEY(checkpoint.service), service_check,
                 "checkpoint service: none (the trainer writes files), local (one on this node) or HOST:PORT"),
      string_key(LT_KEY(checkpoint.dir), nullptr, "checkpoint directory; \"\" = <out_dir>/checkpoints"),
      float_key(LT_KEY(checkpoint.timeout_s), above(0),
                "a save still unfinished after this many seconds (other ranks, an unreachable service) is abandoned"),
      string_key(LT_KEY(checkpoint.token_file), nullptr,
                 "file holding the checkpoint service's shared token (needed when the service is not on loopback)"),

      string_key(LT_KEY(resume), resume_check,
                 "auto (the newest complete checkpoint in checkpoint.dir, if any), none (start fresh) or a checkpoint folder"),
  };
}

#undef LT_KEY

}  // namespace

// ---- NumberRange ------------------------------------------------------------------
bool NumberRange::bounded() const { return std::isfinite(lo) || std::isfinite(hi); }

bool NumberRange::contains(double x) const {
  if (lo_open ? !(x > lo) : !(x >= lo)) return false;
  return hi_open ? x < hi : x <= hi;
}

namespace {
// Range ends print like the numbers a user types: 1, 0.5, 65535.
std::string format_bound(double x) {
  if (std::abs(x) < 1e15 && x == std::floor(x)) return std::to_string(static_cast<int64_t>(x));
  return format_float(x);
}
}  // namespace

std::string NumberRange::describe() const {
  if (!bounded()) return "";
  if (!std::isfinite(hi)) return str_cat(lo_open ? "> " : ">= ", format_bound(lo));
  if (!std::isfinite(lo)) return str_cat(hi_open ? "< " : "<= ", format_bound(hi));
  return str_cat("in ", lo_open ? "(" : "[", format_bound(lo), ", ", format_bound(hi), hi_open ? ")" : "]");
}

// ---- KeySpec ----------------------------------------------------------------------
std::string KeySpec::leaf() const {
  const size_t dot = name.rfind('.');
  return dot == std::string::npos ? name : name.substr(dot + 1);
}

std::string KeySpec::section() const {
  const size_t dot = name.rfind('.');
  return dot == std::string::npos ? "" : name.substr(0, dot);
}

namespace {
std::string format_string_list(const std::vector<std::string>& items) {
  std::string out = "[";
  for (const std::string& x : items) out += (out.size() > 1 ? ", " : "") + yaml_quote(x);
  return out + "]";
}

std::string join_choices(const std::vector<std::string>& choices) {
  std::string out;
  for (const std::string& c : choices) out += (out.empty() ? "" : ", ") + yaml_quote(c);
  return out;
}
}  // namespace

std::string KeySpec::type_text() const {
  const std::string r = range.describe();
  switch (type) {
    case KeyType::kInt:
    case KeyType::kUInt64: return r.empty() ? "int" : "int, " + r;
    case KeyType::kFloat: return r.empty() ? "float" : "float, " + r;
    case KeyType::kBool: return "bool";
    case KeyType::kString: return "string";
    case KeyType::kEnum: return "enum: " + join_choices(choices);
    case KeyType::kTriState: return "-1, false or true";
    case KeyType::kFloatList: return str_cat("list of ", list_len, " floats, each ", r);
    case KeyType::kWordOrFloat: return str_cat("string or number: ", join_choices(choices), ", or a float ", r);
    case KeyType::kStringList: return "list of strings";
    case KeyType::kGroupRules: return "list of {match, ndim, optimizer, lr_scale, weight_decay}";
  }
  return "";
}

std::string KeySpec::format(const Value& v) const {
  switch (type) {
    case KeyType::kInt: return std::to_string(std::get<int64_t>(v));
    case KeyType::kUInt64: return std::to_string(std::get<uint64_t>(v));
    case KeyType::kFloat: return format_float(std::get<double>(v));
    case KeyType::kBool: return std::get<bool>(v) ? "true" : "false";
    case KeyType::kString:
    case KeyType::kEnum: return yaml_quote(std::get<std::string>(v));
    case KeyType::kTriState: {
      const int64_t t = std::get<int64_t>(v);
      return t < 0 ? "-1" : t == 0 ? "false" : "true";
    }
    case KeyType::kFloatList: {
      std::string out = "[";
      for (double x : std::get<std::vector<double>>(v)) out += (out.size() > 1 ? ", " : "") + format_float(x);
      return out + "]";
    }
    case KeyType::kWordOrFloat: {
      const std::string& s = std::get<std::string>(v);
      for (const std::string& c : choices)
        if (s == c) return yaml_quote(s);
      return s;  // a number, stored in format_float's form
    }
    case KeyType::kStringList: return format_string_list(std::get<std::vector<std::string>>(v));
    case KeyType::kGroupRules: {
      std::string out = "[";
      for (const ParamGroupRule& r : std::get<std::vector<ParamGroupRule>>(v)) {
        out += str_cat(out.size() > 1 ? ", " : "", "{match: ", format_string_list(r.match));
        if (r.ndim != 0) out += str_cat(", ndim: ", r.ndim);
        if (!r.optimizer.empty()) out += str_cat(", optimizer: ", yaml_quote(r.optimizer));
        if (r.lr_scale != 1.0) out += str_cat(", lr_scale: ", format_float(r.lr_scale));
        if (r.weight_decay >= 0) out += str_cat(", weight_decay: ", format_float(r.weight_decay));
        out += "}";
      }
      return out + "]";
    }
  }
  return "";
}

const std::vector<KeySpec>& run_config_keys() {
  static const std::vector<KeySpec> keys = build_table();
  return keys;
}

const KeySpec* find_key(const std::string& name) {
  static const std::unordered_map<std::string, const KeySpec*> index = [] {
    std::unordered_map<std::string, const KeySpec*> m;
    for (const KeySpec& k : run_config_keys()) m[k.name] = &k;
    return m;
  }();
  const auto it = index.find(name);
  return it == index.end() ? nullptr : it->second;
}

// ---- YAML text of values ------------------------------------------------------------
std::string format_float(double x) {
  if (std::isnan(x)) return ".nan";
  if (std::isinf(x)) return x > 0 ? ".inf" : "-.inf";
  char buf[40];
  int digits = 1;
  for (; digits < 17; ++digits) {
    std::snprintf(buf, sizeof buf, "%.*g", digits, x);
    if (std::strtod(buf, nullptr) == x) break;
  }
  std::snprintf(buf, sizeof buf, "%.*g", digits, x);
  std::string s = buf;
  size_t e = s.find('e');
  if (e != std::string::npos) {
    const int exp10 = std::atoi(s.c_str() + e + 1);
    if (exp10 >= -4 && exp10 < 16) {  // positional is short enough: 10000.0, not 1.0e+4
      std::snprintf(buf, sizeof buf, "%.*g", std::max(digits, exp10 + 1), x);
      s = buf;
      e = std::string::npos;
    }
  }
  if (e == std::string::npos) return s.find('.') == std::string::npos ? s + ".0" : s;
  // 1e-05 -> 1.0e-5: a '.' and a signed exponent read as a float in YAML 1.1 too.
  std::string mantissa = s.substr(0, e);
  if (mantissa.find('.') == std::string::npos) mantissa += ".0";
  const char sign = s[e + 1];
  const size_t first_digit = s.find_first_not_of('0', e + 2);
  return mantissa + "e" + sign + s.substr(first_digit);
}

namespace {
bool plain_safe(const std::string& s) {
  if (s.empty()) return false;
  const char c0 = s[0];
  if (!(std::isalpha(static_cast<unsigned char>(c0)) || c0 == '_' || c0 == '/' || c0 == '.')) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '/' || c == '.' || c == '-' || c == ':'))
      return false;
  if (s.back() == ':') return false;
  std::string lower;
  for (char c : s) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  // Words YAML 1.1 or 1.2 read as booleans, null, infinity or NaN.
  for (const char* w : {"true", "false", "yes", "no", "on", "off", "y", "n", "null", ".inf", ".nan"})
    if (lower == w) return false;
  return true;
}
}  // namespace

std::string yaml_quote(const std::string& s) {
  if (plain_safe(s)) return s;
  std::string out = "\"";
  for (char c : s) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (u < 0x20 || u == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

}  // namespace lintrain::config
