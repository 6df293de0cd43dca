#include "launch/plan.h"

#include "launch/fp8_training.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "layers/linear_attention.h"
#include "layers/model.h"
#include "runtime/arena.h"
#include "runtime/error.h"
#include "runtime/ops.h"
#include "runtime/ops_gla.h"

namespace lintrain {

namespace {

// A BufferPlan piece of `floats` f32 values, in bytes as the block holds it.
double piece(double floats) {
  return static_cast<double>(arena_round(static_cast<size_t>(floats) * sizeof(float)));
}

// The ops' sizing functions take int; a config past that is planned without
// the (then negligible) scratch arena.
bool fits_int(double v) { return v < 2e9; }

struct Dims {
  double B, T, N, C, F, HD, QKV, KVW, V;
  int H, KVH, d, W, rank;
};

// One 'L' layer's core: saved_bytes() + workspace_bytes() of LinearAttentionCore
// (with its Lasp2StateExchange, or GatedLasp2Exchange for gla, under SP), as
// layers/linear_attention.cpp lays them out.
double linear_core_bytes(const LinearAttentionSpec& s, const Dims& m) {
  const double N = m.N, Hd = static_cast<double>(s.H) * s.d, QK = static_cast<double>(s.H + s.KVH) * s.d;
  const double W = static_cast<double>(s.H + 2 * s.KVH) * s.d;
  double saved = N * W + (s.feature_map == FeatureMap::silu ? N * QK : 0) + N * Hd + (s.output_norm ? N * s.H : 0) +
                 (s.output_gate ? N * Hd : 0) + (s.gated ? N * Hd : 0) /* gla: log gates */;
  double workspace = N * Hd;
  double exchange = 0;
  if (m.W > 1) {
    const double state = m.B * s.H * s.d * s.d;
    saved += state;
    workspace += state;
    if (s.gated) {  // S_out saved; send | recv of the maps [M | ld], send | recv of dP
      const double map = state + m.B * s.H * s.d;
      saved += state;
      exchange = piece(map) + piece(map * m.W) + piece(state) + piece(state * m.W);
    } else {
      exchange = piece(state) + piece(state * m.W) + 4.0 * s.H;  // send | recv (W states), decay
    }
  }
  return 4 * (saved + workspace) + 4.0 * s.H /* decay */ + exchange;
}

// One 'S' layer's core: SoftmaxAttentionCore's saved_bytes() + workspace_bytes().
double softmax_core_bytes(const Dims& m) {
  double saved = m.N * m.QKV + m.N * m.HD + m.B * m.H * m.T;
  double workspace = 0;
  if (m.W > 1) {
    const double seen = m.B * (m.rank + 1) * m.T;
    saved += seen * m.KVW;
    workspace = seen * m.KVW + m.W * m.N * m.KVW + m.N * m.KVW;
  }
  return 4 * (saved + workspace) + 4 * m.T * m.d /* RoPE table */;
}

LinearAttentionDims linear_dims(const LinearAttentionSpec& s, const Dims& m) {
  const int W = (s.H + 2 * s.KVH) * s.d;
  const int block = std::max(1, std::min(s.block, static_cast<int>(m.T)));
  LinearAttentionDims l{static_cast<int>(m.B), static_cast<int>(m.T), s.H, s.KVH, s.d, block, W, W, W, s.H * s.d};
  l.ldg = s.H * s.d;
  return l;
}

AttentionDims softmax_dims(const Dims& m) {
  AttentionDims a;
  a.B = static_cast<int>(m.B);
  a.Tq = static_cast<int>(m.T);
  a.Tk = (m.rank + 1) * static_cast<int>(m.T);
  a.H = m.H;
  a.KVH = m.KVH;
  a.d = m.d;
  a.q_offset = m.rank * static_cast<int>(m.T);
  return a;
}

// The model's scratch arena: the largest reservation of its ops (LinearLlama's
// constructor and the cores' scratch_bytes()), rounded as Arena::reserve rounds.
double scratch_arena_bytes(const RunConfig& cfg, const Dims& m, int64_t grad_numel) {
  const ModelConfig& mc = cfg.model;
  if (!fits_int(m.N * std::max({m.C, 2 * m.F, m.QKV, m.V})) || !fits_int(static_cast<double>(grad_numel)) ||
      !fits_int(m.B * m.H * m.d * m.d * m.W))
    return 0;
  const Device dev = Device::CPU;  // the plan is of the CPU backend's sizes
  const int n = static_cast<int>(m.N), c = static_cast<int>(m.C), f = static_cast<int>(m.F);
  const int hd = static_cast<int>(m.HD), qkv = static_cast<int>(m.QKV), v = static_cast<int>(m.V);
  size_t bytes = std::max(rmsnorm_backward_scratch_bytes(dev, n, c), grad_norm_squared_scratch_bytes(dev, grad_numel));
  if (cfg.precision.compute == "bf16") {
    const int rows = std::max(1, std::min(256, n));  // ChunkedCrossEntropy's chunk
    for (const auto& [r, co, in] : {std::array<int, 3>{rows, v, c}, {rows, c, v}, {v, c, rows}, {n, qkv, c},
                                    {n, c, qkv}, {qkv, c, n}, {n, 2 * f, c}, {n, c, 2 * f}, {2 * f, c, n},
                                    {n, c, f}, {n, f, c}, {c, f, n}, {n, c, hd}, {n, hd, c}, {c, hd, n}})
      bytes = std::max(bytes, matmul_bf16_scratch_bytes(dev, r, co, in));
  }
  bool softmax_done = false;
  for (int i = 0; i < mc.num_hidden_layers; ++i) {
    if (mc.layer_kind(i) == 'S') {
      if (softmax_done) continue;  // every softmax layer has the same sizes
      softmax_done = true;
      const AttentionDims a = softmax_dims(m);
      bytes = std::max({bytes, softmax_attention_forward_scratch_bytes(dev, a),
                        softmax_attention_backward_scratch_bytes(dev, a)});
    } else {
      const LinearAttentionSpec s = make_linear_attention_spec(mc, i);
      const LinearAttentionDims l = linear_dims(s, m);
      if (s.gated) {
        bytes = std::max({bytes, gla_forward_scratch_bytes(dev, l), gla_backward_scratch_bytes(dev, l),
                          m.W > 1 ? gla_terms_scratch_bytes(dev, l) : size_t{0}});
        if (cfg.precision.compute == "bf16") {  // the forget gate's GEMMs
          const int r = s.gate_rank;
          for (const auto& [rr, co, in] : {std::array<int, 3>{n, r, c}, {n, hd, r}, {n, r, hd}, {n, c, r},
                                           {hd, r, n}, {r, c, n}})
            bytes = std::max(bytes, matmul_bf16_scratch_bytes(dev, rr, co, in));
        }
        continue;
      }
      bytes = std::max({bytes, linear_attention_forward_scratch_bytes(dev, l),
                        linear_attention_backward_scratch_bytes(dev, l)});
      if (m.W > 1)
        bytes = std::max({bytes, lasp2_terms_scratch_bytes(dev, l),
                          lasp2_merge_states_scratch_bytes(dev, l.B, s.H, s.d)});
    }
    if (i > 64 && softmax_done) break;  // the linear specs repeat (tnl decay differs, sizes do not)
  }
  return static_cast<double>(arena_round(bytes));
}

// precision.fp8 as LinearLlama::enable_fp8 sets it up: for each block GEMM
// whose tensors the include/exclude globs select (q|k|v and gate|up are one
// GEMM each), an Fp8Linear with its scratch (the dequantised operands) and,
// under the delayed recipe, three scales and amax histories on the host.
struct Fp8Plan {
  int gemms = 0;
  size_t scratch = 0;   // the largest Fp8Linear::scratch_bytes: the arena grows to it
  double state = 0;     // host bytes of the delayed recipe's scales, histories and event counts
};

Fp8Plan plan_fp8(const RunConfig& cfg, const ParamTable& table, const Dims& m) {
  Fp8Plan f;
  if (!cfg.precision.fp8.enabled) return f;
  const Fp8ModelOptions o = fp8_model_options(cfg.precision.fp8, nullptr);
  const int n = static_cast<int>(m.N), c = static_cast<int>(m.C), ff = static_cast<int>(m.F);
  const int hd = static_cast<int>(m.HD), qkv = static_cast<int>(m.QKV);
  const auto gemm = [&](int layer, std::vector<const char*> names, int in, int out) {
    int chosen = 0, present = 0;
    for (const char* name : names) {
      const std::string full = str_cat("model.layers.", layer, ".", name);
      if (table.find(full) < 0) continue;
      ++present;
      chosen += o.selected(full) ? 1 : 0;
    }
    if (present == 0 || chosen < present) return;  // not in FP8 (a split selection the model refuses at start)
    ++f.gemms;
    f.scratch = std::max(f.scratch, Fp8Linear::scratch_bytes(Device::CPU, o.settings, n, in, out));
  };
  for (int i = 0; i < cfg.model.num_hidden_layers; ++i) {
    gemm(i, {"self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight"}, c, qkv);
    gemm(i, {"self_attn.g_proj.weight"}, c, hd);
    gemm(i, {"self_attn.o_proj.weight"}, hd, c);
    gemm(i, {"mlp.gate_proj.weight", "mlp.up_proj.weight"}, c, 2 * ff);
    gemm(i, {"mlp.down_proj.weight"}, ff, c);
  }
  if (o.settings.recipe == Fp8Recipe::Delayed)  // per GEMM: weight, input, gradient
    f.state = 3.0 * f.gemms * (4.0 * (o.settings.delayed.amax_history_len + 1) + 8.0 * 2);
  return f;
}

}  // namespace

RunPlan plan_run(const RunConfig& cfg, int sp, int dp) {
  const ModelConfig& mc = cfg.model;
  if (sp < 1 || dp < 1) throw ConfigError(str_cat("plan: SP ", sp, " x DP ", dp, " must both be >= 1"));
  if (cfg.data.seq_len % sp != 0)
    throw ConfigError(str_cat("plan: parallel.sequence ", sp, " does not divide data.seq_len ", cfg.data.seq_len));
  RunPlan p;
  p.sp = sp;
  p.dp = dp;
  const ParamTable table = make_param_table(mc);
  p.params = table.param_count();
  p.param_bytes = p.grad_bytes = 4.0 * static_cast<double>(table.buffer_numel());
  p.compute_copy_bytes = cfg.precision.compute == "bf16" ? p.param_bytes : 0;
  p.optimizer = plan_optimizer_memory(cfg.optim, table);
  p.optimizer_bytes = 4.0 * static_cast<double>(p.optimizer.state_floats);
  p.checkpoint_staging = cfg.checkpoint.every > 0 ? p.param_bytes + p.optimizer_bytes : 0;

  Dims m{};
  m.B = cfg.train.micro_batch;
  m.T = static_cast<double>(cfg.data.seq_len / sp);
  m.N = m.B * m.T;
  m.C = mc.hidden_size;
  m.F = mc.intermediate_size;
  m.H = mc.num_attention_heads;
  m.KVH = mc.kv_heads();
  m.d = mc.head_dim();
  m.HD = static_cast<double>(m.H) * m.d;
  m.QKV = m.HD + 2.0 * m.KVH * m.d;
  m.KVW = 2.0 * m.KVH * m.d;
  m.V = mc.vocab_size;
  m.W = sp;
  m.rank = sp - 1;
  const bool bf16 = cfg.precision.compute == "bf16";

  // LinearLlama's activation block, piece by piece (layers/model.cpp), by kind.
  PlanActivations& a = p.activations;
  int linear_layers = 0, softmax_layers = 0;
  bool gated = false;
  int forget_rank = 0;  // the widest gla forget-gate rank (0 = no gla layer)
  int gla_layers = 0;
  double linear_flops = 0;
  for (int i = 0; i < mc.num_hidden_layers; ++i) {
    const bool linear = mc.layer_kind(i) == 'L';
    const LinearAttentionSpec spec = linear ? make_linear_attention_spec(mc, i) : LinearAttentionSpec{};
    const bool gate = linear && spec.output_gate;
    gated = gated || gate;
    // x_in, h1, rstd1, qkv, g, attn: the attention sub-block; then its core.
    double attn = piece(m.N * m.C) + piece(m.N * m.C) + piece(m.N) + piece(m.N * m.QKV) +
                  (gate ? piece(m.N * m.HD) : piece(0)) + piece(m.N * m.HD);
    if (linear && spec.gated) {  // fz (N, R) and the log gates (N, HD) of the forget gate
      attn += piece(m.N * spec.gate_rank) + piece(m.N * m.HD);
      forget_rank = std::max(forget_rank, spec.gate_rank);
      ++gla_layers;
    }
    if (linear) {
      attn += linear_core_bytes(spec, m);
      a.linear_attention += attn;
      ++linear_layers;
      // Blockwise (Lightning-2) per token and head, forward: Q K^T and (.)V
      // over a block, q S and the block state k^T v; backward about twice that.
      const double b = std::max(1, std::min(spec.block, static_cast<int>(m.T)));
      linear_flops += 3 * spec.H * (4 * b * spec.d + 4.0 * spec.d * spec.d);
    } else {
      attn += softmax_core_bytes(m);
      a.softmax_attention += attn;
      ++softmax_layers;
    }
    // x_mid, h2, rstd2, gu, act: the MLP sub-block.
    a.mlp += piece(m.N * m.C) + piece(m.N * m.C) + piece(m.N) + piece(m.N * 2 * m.F) + piece(m.N * m.F);
  }
  // x_final, h_final, rstd_final, dh_final, and the loss head's logits chunk
  // and per-row results (ChunkedCrossEntropy: 256 rows, a double and an int each).
  const double rows = std::max(1.0, std::min(256.0, m.N));
  a.head = piece(m.N * m.C) * 3 + piece(m.N) + 4 * rows * m.V + rows * (sizeof(double) + sizeof(int32_t));
  // dx, d_act, d_gu, d_h, d_attn, d_qkv, d_g, d_res; token ids and targets; the arena.
  const Fp8Plan fp8 = plan_fp8(cfg, table, m);
  const double fp8_scratch = static_cast<double>(fp8.scratch);
  a.other = piece(m.N * m.C) + piece(m.N * m.F) + piece(m.N * 2 * m.F) + piece(m.N * m.C) + piece(m.N * m.HD) +
            piece(m.N * m.QKV) + (gated ? piece(m.N * m.HD) : 0) +
            (forget_rank > 0 ? piece(m.N * m.HD) + piece(m.N * forget_rank) : 0) /* d_lg, d_fz */ +
            (bf16 ? piece(m.N * m.C) : 0) + 2 * 4 * m.N +
            std::max(scratch_arena_bytes(cfg, m, table.buffer_numel()), fp8_scratch);
  // The trainer loads the step's micro-batches (inputs and targets, int32) up front.
  a.data = 2.0 * 4 * m.N * cfg.train.grad_accum;

  // FP8 is emulated: each FP8 GEMM quantises its operands into f32 copies of
  // the FP8 values (counted in the scratch arena above) and keeps nothing in
  // FP8 for backward, so it saves no memory; its scales and histories are
  // the only other cost.
  p.fp8_gemms = fp8.gemms;
  p.fp8_state_bytes = fp8.state;

  // Collectives per step, as CommStats counts them (send-buffer bytes).
  const double micro = cfg.train.grad_accum;
  if (sp > 1) {
    const int fixed_layers = linear_layers - gla_layers;
    const double state = 4 * m.B * m.H * m.d * m.d;
    if (fixed_layers > 0)
      p.collectives.push_back({"LASP-2 all-gather of memory states", fixed_layers, micro * fixed_layers * state,
                               micro * fixed_layers * state});
    if (gla_layers > 0)  // forward the chunk maps [M | ld], backward dP
      p.collectives.push_back({"LASP-2 all-gather of gated chunk maps (gla)", gla_layers,
                               micro * gla_layers * (state + 4 * m.B * m.H * m.d), micro * gla_layers * state});
    if (softmax_layers > 0) {
      const double kv = 4 * m.N * m.KVW;
      p.collectives.push_back({"LASP-2H all-gather of K|V", softmax_layers, micro * softmax_layers * kv, 0});
      p.collectives.push_back({"LASP-2H reduce-scatter of dK|dV", softmax_layers, 0, micro * softmax_layers * sp * kv});
    }
  }
  if (sp * dp > 1) p.collectives.push_back({"gradient all-reduce (DP x SP)", 0, 0, p.grad_bytes});

  // FLOPs per token of a training step (forward + backward).
  double matmul_params = 0;
  for (const TensorView& v : table.views())
    if (v.shape.size() == 2 && v.name != "model.embed_tokens.weight") matmul_params += static_cast<double>(v.numel);
  if (mc.tie_word_embeddings) matmul_params += m.V * m.C;  // the head reads the embedding
  p.flops_per_token_matmul = 6 * matmul_params;
  // Causal softmax: each query of the full sequence sees (t + 1) keys, on
  // average (L + 1) / 2; Q K^T and P V are 2 d flops per key each, per head.
  const double full = cfg.data.seq_len;
  p.flops_per_token_attention = linear_flops + softmax_layers * 3 * m.H * 4.0 * m.d * (full + 1) / 2;
  return p;
}

namespace {

std::string bytes_text(double b) {
  char buf[48];
  const double a = std::fabs(b);
  if (a >= 1024.0 * 1024 * 1024) std::snprintf(buf, sizeof buf, "%.2f GiB", b / (1024.0 * 1024 * 1024));
  else if (a >= 1024.0 * 1024) std::snprintf(buf, sizeof buf, "%.2f MiB", b / (1024.0 * 1024));
  else if (a >= 1024.0) std::snprintf(buf, sizeof buf, "%.1f KiB", b / 1024.0);
  else std::snprintf(buf, sizeof buf, "%.0f B", b);
  return buf;
}

std::string count_text(double n) {
  char buf[32];
  if (n >= 1e9) std::snprintf(buf, sizeof buf, "%.2fG", n / 1e9);
  else if (n >= 1e6) std::snprintf(buf, sizeof buf, "%.2fM", n / 1e6);
  else if (n >= 1e3) std::snprintf(buf, sizeof buf, "%.1fK", n / 1e3);
  else std::snprintf(buf, sizeof buf, "%.0f", n);
  return buf;
}

std::string line(const char* what, double bytes, const std::string& note = "") {
  char buf[96];
  std::snprintf(buf, sizeof buf, "  %-26s %12s", what, bytes_text(bytes).c_str());
  return str_cat(buf, note.empty() ? "" : "   ", note, "\n");
}

double mem_total_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  double kb = -1;
  while (in >> key) {
    if (key == "MemTotal:") {
      in >> kb;
      break;
    }
    std::string rest;
    std::getline(in, rest);
  }
  return kb < 0 ? -1 : kb * 1024;
}

}  // namespace

double parse_memory_size(const std::string& text) {
  size_t pos = 0;
  double v = -1;
  try {
    v = std::stod(text, &pos);
  } catch (const std::exception&) {
    pos = 0;
  }
  std::string unit = text.substr(pos);
  for (char& c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  double scale = -1;
  if (unit.empty() || unit == "b") scale = 1;
  else if (unit == "kib") scale = 1024.0;
  else if (unit == "mib") scale = 1024.0 * 1024;
  else if (unit == "gib") scale = 1024.0 * 1024 * 1024;
  else if (unit == "tib") scale = 1024.0 * 1024 * 1024 * 1024;
  else if (unit == "kb") scale = 1e3;
  else if (unit == "mb") scale = 1e6;
  else if (unit == "gb") scale = 1e9;
  else if (unit == "tb") scale = 1e12;
  if (pos == 0 || scale < 0 || !(v > 0) || !std::isfinite(v))
    throw UsageError(str_cat("--device-memory '", text, "' is not a size; give e.g. 80GiB, 512MiB, 40GB or bytes"));
  return v * scale;
}

std::string format_plan(const RunConfig& cfg, const PlanOptions& opts) {
  const int world = opts.nodes > 0 ? opts.nodes * opts.gpus_per_node : cfg.parallel.sequence * cfg.parallel.data;
  const int ranks_per_node = opts.nodes > 0 ? opts.gpus_per_node : world;
  const int sp = cfg.parallel.sequence;
  if (world % sp != 0)
    throw ConfigError(str_cat("plan: parallel.sequence ", sp, " does not divide the world of ", world, " ranks (",
                              opts.nodes, " nodes x ", opts.gpus_per_node, "); set parallel.sequence to a divisor"));
  double budget = opts.device_memory;
  std::string budget_from = "--device-memory";
  if (budget < 0) {
    if (cfg.run.device != "cpu")
      throw UsageError("plan: run.device is " + cfg.run.device + ": give the GPU's memory with --device-memory, e.g. 80GiB");
    const double ram = mem_total_bytes();
    budget = ram / std::max(1, ranks_per_node);
    budget_from = str_cat("this machine's RAM (", bytes_text(ram), ")", ranks_per_node > 1 ? str_cat(" / ", ranks_per_node, " ranks") : "");
  }
  const RunPlan p = plan_run(cfg, sp, world / sp);
  const PlanActivations& a = p.activations;
  std::string out = str_cat("plan ", cfg.run.name, ": ", world, " rank(s) = SP ", p.sp, " x DP ", p.dp, ", ",
                            cfg.train.micro_batch, " x ", cfg.data.seq_len / p.sp, " tokens per micro-batch (data.seq_len ",
                            cfg.data.seq_len, " / SP ", p.sp, "), grad_accum ", cfg.train.grad_accum, "\n");
  out += str_cat("per rank (SP rank ", p.sp - 1, ", the largest):\n");
  out += line("parameters", p.param_bytes, str_cat(count_text(static_cast<double>(p.params)), " params, f32"));
  out += line("gradients", p.grad_bytes, "f32");
  if (p.compute_copy_bytes > 0) out += line("bf16 compute copy", p.compute_copy_bytes, "(f32 buffer of bf16 values)");
  out += line("optimizer state", p.optimizer_bytes, str_cat("optim.name ", cfg.optim.name));
  for (const GroupMemory& g : p.optimizer.groups) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "    %-24s %12s", g.group.name.c_str(),
                  bytes_text(4.0 * static_cast<double>(g.state_floats)).c_str());
    out += str_cat(buf, "   ", g.group.optimizer, ", ", count_text(static_cast<double>(g.params)), " params\n");
  }
  out += line("activations", a.total(), "one micro-batch, saved for backward + workspaces");
  out += line("  linear attention", a.linear_attention);
  out += line("  softmax attention", a.softmax_attention);
  out += line("  MLP", a.mlp);
  out += line("  loss / head", a.head);
  out += line("  other", a.other, "shared backward buffers, token ids, ops' scratch");
  out += line("  data batches", a.data, "the step's micro-batches, int32");
  if (p.checkpoint_staging > 0) out += line("checkpoint staging", p.checkpoint_staging, "checkpoint.every > 0");
  out += line("FP8 state", p.fp8_state_bytes,
              cfg.precision.fp8.enabled
                  ? str_cat(p.fp8_gemms, " GEMMs in FP8, ", cfg.precision.fp8.recipe,
                            " recipe; emulated (f32 copies of the quantised operands, in the scratch above), so "
                            "FP8 saves no memory")
                  : std::string("not enabled"));
  out += line("total", p.total());
  const bool fits = p.total() <= budget;
  out += str_cat("  memory per rank            ", bytes_text(budget), " (", budget_from, "): ",
                 fits ? "fits" : "does NOT fit", "\n");
  out += "communication per step (bytes this rank sends, as the communicators count them):\n";
  if (p.collectives.empty()) out += "  none (one rank)\n";
  for (const PlanCollective& c : p.collectives) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "  %-34s forward %11s  backward %11s", c.what.c_str(), bytes_text(c.forward).c_str(),
                  bytes_text(c.backward).c_str());
    out += str_cat(buf, c.layers > 0 ? str_cat("  (", c.layers, " layers x ", cfg.train.grad_accum, " micro-batches)")
                                     : std::string("  (once per step)"),
                   "\n");
  }
  char flops[160];
  std::snprintf(flops, sizeof flops, "FLOPs per token (forward + backward): %.3g = %.3g matmul (6 x params) + %.3g attention\n",
                p.flops_per_token_matmul + p.flops_per_token_attention, p.flops_per_token_matmul,
                p.flops_per_token_attention);
  out += flops;
  // The smallest SP that fits: divides the sequence and the world.
  int best = 0;
  double best_total = 0;
  for (int s = 1; s <= world; ++s) {
    if (world % s != 0 || cfg.data.seq_len % s != 0) continue;
    const double t = plan_run(cfg, s, world / s).total();
    if (t <= budget) {
      best = s;
      best_total = t;
      break;
    }
  }
  if (best > 0)
    out += str_cat("smallest parallel.sequence that fits data.seq_len ", cfg.data.seq_len, " in ", bytes_text(budget),
                   ": ", best, " (", bytes_text(best_total), " per rank, DP ", world / best, ")\n");
  else
    out += str_cat("no parallel.sequence dividing data.seq_len ", cfg.data.seq_len, " and the world of ", world,
                   " ranks fits ", bytes_text(budget), "; give more ranks (--nodes, --gpus-per-node) or lower "
                   "train.micro_batch\n");
  return out;
}

}  // namespace lintrain
