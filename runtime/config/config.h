// The run file as typed structs. runtime/config/schema.cpp holds the one table
// of keys (type, range, meaning, the member each writes) that parses,
// validates and documents it; these structs are what the rest of lintrain
// reads. Defaults are written once, here: the table reads them from a
// default-constructed RunConfig for the README and `lintrain config --doc`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lintrain {

struct RunSection {
  std::string name = "run";
  std::string out_dir = "runs/run";
  uint64_t seed = 1234;
  int threads = 0;  // OpenMP/BLAS threads per rank; 0 = all cores / ranks per node
  std::string device = "cpu";  // cpu | cuda (one GPU per rank, by local rank)
  bool tensorboard = true;       // TensorBoard event files in out_dir (rank 0)
  double tensorboard_flush_s = 5.0;  // how often they are written
  double peak_tflops = 0;  // peak per rank for MFU; 0 = known GPU or measured CPU GEMM (launch/mfu.h)
};

struct LinearAttentionConfig {
  std::string variant = "lightning";  // basic | lightning | retnet | gla
  int block_size = 64;                // Lightning-2 intra/inter block length
  // "" = the variant's default. feature map on q and k: identity | elu1 | silu | relu
  std::string feature_map = "";
  // decay: "" = the variant's default; none | tnl | retnet | a number in (0, 1]
  std::string decay = "";
  int output_norm = -1;  // RMSNorm of each head's output; -1 = variant default
  int output_gate = -1;  // o * silu(x W_g) with g_proj; -1 = variant default
  // gla only: the forget gate a_t = sigmoid(x W_down^T W_up^T + b)^(1/tau)
  int gate_rank = 16;       // inner width of the low-rank gate projection
  double gate_tau = 16.0;   // tau, the gate's temperature (the GLA paper's 16)
};

struct ModelConfig {
  int vocab_size = 256;
  int hidden_size = 256;
  int num_hidden_layers = 4;
  int num_attention_heads = 4;
  int num_key_value_heads = 0;  // 0 = num_attention_heads (no grouped-query attention)
  int intermediate_size = 688;
  std::string layer_pattern = "LLLS";  // L linear, S softmax; repeated over the layers
  LinearAttentionConfig linear_attention;
  double rms_norm_eps = 1e-5;
  double rope_theta = 10000.0;
  bool tie_word_embeddings = false;
  double initializer_range = 0.02;

  int kv_heads() const { return num_key_value_heads > 0 ? num_key_value_heads : num_attention_heads; }
  int head_dim() const { return hidden_size / num_attention_heads; }
  // 'L' or 'S' for layer i (the pattern repeats).
  char layer_kind(int i) const { return layer_pattern[static_cast<size_t>(i) % layer_pattern.size()]; }
};

struct DataConfig {
  std::string kind = "text";  // mqar | text | tokens | megatron
  std::string path = "";      // text: a file or directory; tokens: a .bin file; megatron: a .bin/.idx prefix
  std::string token_dtype = "u16";  // tokens: u16 | u32 (flat little-endian array)
  // megatron: Megatron's flat blend [weight, prefix, weight, prefix, ...]
  // (instead of data.path), the end-of-document id (-1 = vocab_size - 1) and
  // whether the loader puts it after each document.
  std::vector<std::string> blend;
  int eod_token = -1;
  bool add_eod = true;
  int seq_len = 256;
  double valid_fraction = 0.05;
  // MQAR: key-value pairs per sequence and the key/value vocabulary split.
  int mqar_pairs = 8;
  int mqar_queries = 0;  // 0 = as many queries as pairs
  // A Hugging Face tokenizer.json that the export copies beside the weights;
  // "" = megatron: the one beside the first dataset, if there is one.
  std::string tokenizer = "";
};

struct TrainConfig {
  int steps = 200;
  int micro_batch = 4;
  int grad_accum = 1;
  double grad_clip = 1.0;  // global-norm clip; 0 = off
  int log_every = 1;
  int eval_every = 50;     // 0 = only at the end
  int eval_batches = 4;
  int export_every = 0;    // write model.safetensors every N steps; 0 = only at the end
  int max_bad_steps = 5;   // stop after this many non-finite steps in a row (each update skipped)
};

struct ParallelConfig {
  int sequence = 1;
  int data = 1;
  double timeout_s = 300;  // a collective unfinished after this long aborts the job; 0 = off
};

struct Fp8Config {
  bool enabled = false;
  std::string recipe = "delayed";  // delayed | current | blockwise
  std::string format = "hybrid";   // hybrid | e4m3
  int amax_history_len = 1024;
  std::string amax_compute = "max";  // max | most_recent (delayed)
  int margin = 0;
  // Block linear tensors (Hugging Face names) whose GEMMs run in FP8: those an
  // include glob matches and no exclude glob does.
  std::vector<std::string> include = {"model.layers.*"};
  std::vector<std::string> exclude = {};
  double warn_saturated = 1.0e-3;  // warn when a class's saturated fraction of a step passes this
};

struct PrecisionConfig {
  std::string compute = "fp32";  // fp32 | bf16
  Fp8Config fp8;
};

// One rule of optim.groups. A tensor takes the first rule whose `match`
// patterns and `ndim` both fit it; tensors no rule matches keep optim.name.
struct ParamGroupRule {
  std::vector<std::string> match = {"*"};  // globs on the HF name: '*' any run, '?' one character
  int ndim = 0;                            // 0 = any rank; else the tensor's rank must equal it
  std::string optimizer = "";              // adamw | lion | galore | spam | frugal; "" = optim.name
  double lr_scale = 1.0;                   // multiplies the scheduled learning rate
  double weight_decay = -1.0;              // < 0 = optim.weight_decay (optim.no_decay still applies)

  bool operator==(const ParamGroupRule& o) const {
    return match == o.match && ndim == o.ndim && optimizer == o.optimizer && lr_scale == o.lr_scale &&
           weight_decay == o.weight_decay;
  }
};

struct AdamWConfig {
  std::vector<double> betas = {0.9, 0.999};
  double eps = 1e-8;
};

// Lion (Chen et al. 2023): sign of an interpolated momentum; one state.
struct LionConfig {
  std::vector<double> betas = {0.9, 0.99};
};

// GaLore (Zhao et al. 2024): Adam moments in a rank-r gradient subspace.
struct GaloreConfig {
  int rank = 128;                // at most min(rows, cols) of every matrix it projects (checked)
  int update_proj_gap = 200;     // steps between projector refreshes
  double scale = 0.25;           // alpha: the projected-back update is multiplied by it
  std::string svd = "exact";     // exact (LAPACK) | randomized (subspace iteration)
  int svd_oversample = 8;        // randomized: extra sketch columns beyond the rank
  int svd_power_iters = 2;       // randomized: subspace (power) iterations
  std::vector<double> betas = {0.9, 0.999};
  double eps = 1e-6;
};

// SPAM (Huang et al. 2025): Adam with periodic moment reset, spike-aware
// clipping and optional sparse momentum.
struct SpamConfig {
  std::vector<double> betas = {0.9, 0.999};
  double eps = 1e-6;
  int reset_interval = 500;   // zero both moments every N steps
  int warmup = 150;           // cosine warm-up of the update after each reset
  double threshold = 5000;    // theta: clip where g^2 > theta * v; 0 = off
  int clip_delay = 20;        // no clipping in the first N steps after a reset
  double density = 1.0;       // fraction of each matrix with momentum; 1 = dense
};

// FRUGAL (Zmushko et al. 2025): AdamW in a subspace, a state-free rule on the rest.
struct FrugalConfig {
  double density = 0.25;               // rho: state-full fraction of each projectable weight
  int update_gap = 200;                // steps between subspace changes (state reset)
  std::string proj_type = "svd";       // svd | random | randk | blockwise
  std::string state_free = "signsgd";  // signsgd | sgd | none
  double inactive_lr_scale = 1.0;      // learning-rate multiplier of the state-free part
  std::vector<double> betas = {0.9, 0.999};
  double eps = 1e-8;
};

struct OptimConfig {
  std::string name = "adamw";  // adamw | lion | galore | spam | frugal
  double lr = 0.0;             // peak learning rate; 0 = the optimizer's default (optim_default_lr)
  double weight_decay = 0.0;
  std::vector<std::string> no_decay = {"*norm*"};  // globs of tensors that never get weight decay
  std::vector<ParamGroupRule> groups;              // empty = the defaults of optim.name
  AdamWConfig adamw;
  LionConfig lion;
  GaloreConfig galore;
  SpamConfig spam;
  FrugalConfig frugal;
};

// The peak learning rate of a run: optim.lr, or when that is 0 the paper's
// default of optim.name (lion 1e-4, the others 1e-3).
double optim_default_lr(const std::string& name);
inline double optim_peak_lr(const OptimConfig& c) { return c.lr > 0 ? c.lr : optim_default_lr(c.name); }

struct ScheduleConfig {
  std::string kind = "cosine";  // cosine | constant | linear
  int warmup_steps = 20;
  double min_lr_ratio = 0.1;
};

struct CheckpointConfig {
  int every = 0;  // 0 = off
  int keep = 3;
  bool async = true;
  std::string service = "none";  // none | local | HOST:PORT
  std::string dir = "";          // "" = <out_dir>/checkpoints
  double timeout_s = 600;        // a save unfinished after this long is abandoned
  std::string token_file = "";   // the service's shared token (non-loopback services)

  // checkpoint.dir, or <out_dir>/checkpoints when it is "".
  std::string resolved_dir(const std::string& out_dir) const { return dir.empty() ? out_dir + "/checkpoints" : dir; }
};

struct RunConfig {
  RunSection run;
  ModelConfig model;
  DataConfig data;
  TrainConfig train;
  ParallelConfig parallel;
  PrecisionConfig precision;
  OptimConfig optim;
  ScheduleConfig schedule;
  CheckpointConfig checkpoint;
  std::string resume = "auto";  // auto | none | PATH
  std::string source = "";      // where it was loaded from, for messages
  // One line each, for keys given in a section this run does not use
  // ("run.yaml:7: optim.galore.rank = 4 is set but optim.name is adamw (...):
  // it has no effect"); the commands print them as "lintrain: warning: ...".
  std::vector<std::string> warnings;
};

// Parses a YAML run file, applies `--set section.key=value` overrides in order,
// validates everything, and returns the typed config. Throws ConfigError with
// one line naming the key, its line in the file, the bad value and the fix
// (unknown keys get the nearest valid key suggested).
RunConfig load_run_config(const std::string& path, const std::vector<std::string>& overrides = {});
// The same from YAML text (tests; `source` names it in messages).
RunConfig parse_run_config(const std::string& yaml_text, const std::vector<std::string>& overrides,
                           const std::string& source);
// A resolved run file recorded by an earlier run (a checkpoint's): parsed
// and checked like a run file, except that its data files need not exist
// any more.
RunConfig parse_recorded_run_config(const std::string& yaml_text, const std::string& source);
// The Markdown table of every option (name, type, default, meaning) that the
// README carries; `lintrain config --doc` prints it.
std::string config_reference_markdown();
// The fully resolved config as YAML (written to <out_dir>/config.yaml and
// into every checkpoint).
std::string config_to_yaml(const RunConfig& cfg);

// A key whose value differs between two resolved run files.
struct ConfigChange {
  std::string key;     // "optim.lr"
  std::string before;  // its YAML text in the first file, "(absent)" when missing
  std::string after;
};
// The keys of the table whose values differ between two config_to_yaml
// texts (the first may come from an older lintrain and lack newer keys), in
// table order. Throws ConfigError when `before_yaml` is not YAML.
std::vector<ConfigChange> config_changes(const std::string& before_yaml, const std::string& after_yaml);

}  // namespace lintrain
