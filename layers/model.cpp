#include "layers/model.h"

#include <array>
#include <cmath>
#include <algorithm>
#include <cstring>

#include "layers/linear.h"
#include "layers/linear_attention.h"
#include "layers/softmax_attention.h"
#include "runtime/buffer_plan.h"
#include "runtime/device.h"
#include "runtime/host_staging.h"
#include "runtime/ops.h"
#include "runtime/ops_gla.h"
#include "runtime/rng.h"

namespace lintrain {

namespace {
std::string layer_name(int i, const char* suffix) {
  return str_cat("model.layers.", i, ".", suffix);
}
bool has_gate(const ModelConfig& cfg, int layer) {
  return cfg.layer_kind(layer) == 'L' && make_linear_attention_spec(cfg, layer).output_gate;
}
bool has_forget_gate(const ModelConfig& cfg, int layer) {
  return cfg.layer_kind(layer) == 'L' && make_linear_attention_spec(cfg, layer).gated;
}
}  // namespace

ParamTable make_param_table(const ModelConfig& cfg) {
  const int64_t C = cfg.hidden_size, V = cfg.vocab_size, F = cfg.intermediate_size;
  const int64_t HD = static_cast<int64_t>(cfg.num_attention_heads) * cfg.head_dim();
  const int64_t KVD = static_cast<int64_t>(cfg.kv_heads()) * cfg.head_dim();
  ParamTable t;
  t.add("model.embed_tokens.weight", {V, C});
  for (int i = 0; i < cfg.num_hidden_layers; ++i) {
    t.add(layer_name(i, "input_layernorm.weight"), {C});
    // q|k|v adjacent: one (HD + 2 KVD, C) matrix, one GEMM.
    t.add(layer_name(i, "self_attn.q_proj.weight"), {HD, C});
    t.add(layer_name(i, "self_attn.k_proj.weight"), {KVD, C}, true);
    t.add(layer_name(i, "self_attn.v_proj.weight"), {KVD, C}, true);
    if (has_gate(cfg, i)) t.add(layer_name(i, "self_attn.g_proj.weight"), {HD, C});
    if (has_forget_gate(cfg, i)) {  // gla: log a = logsigmoid(x W_down^T W_up^T + b) / tau
      const int64_t R = cfg.linear_attention.gate_rank;
      t.add(layer_name(i, "self_attn.forget_gate_down.weight"), {R, C});
      t.add(layer_name(i, "self_attn.forget_gate_up.weight"), {HD, R});
      t.add(layer_name(i, "self_attn.forget_gate_up.bias"), {HD});
    }
    t.add(layer_name(i, "self_attn.o_proj.weight"), {C, HD});
    t.add(layer_name(i, "post_attention_layernorm.weight"), {C});
    t.add(layer_name(i, "mlp.gate_proj.weight"), {F, C});
    t.add(layer_name(i, "mlp.up_proj.weight"), {F, C}, true);
    t.add(layer_name(i, "mlp.down_proj.weight"), {C, F});
  }
  t.add("model.norm.weight", {C});
  if (!cfg.tie_word_embeddings) t.add("lm_head.weight", {V, C});
  return t;
}

// One Llama block's parameter indices and saved activations for (B, T).
struct LinearLlama::Block {
  char kind;  // 'L' or 'S'
  int ln1, wqkv, wg, wo, ln2, wgu, wd;  // ParamTable indices (wg = -1 without gate)
  int wfd = -1, wfu = -1, bfu = -1;      // gla forget gate: down, up, bias (-1 = not gla)
  int gate_rank = 0;
  float gate_tau = 1.0f;
  std::unique_ptr<LinearAttentionCore> linear;
  std::unique_ptr<SoftmaxAttentionCore> softmax;
  // Saved for backward, in the model's activation block; N = B*T tokens.
  float* x_in = nullptr;                    // (N, C) block input (residual stream)
  float* x_mid = nullptr;                   // (N, C) after the attention residual
  float *h1 = nullptr, *rstd1 = nullptr;    // (N, C), (N): input_layernorm
  float* qkv = nullptr;                     // (N, HD + 2 KVD)
  float* g = nullptr;                       // (N, HD) gate pre-activation (gated linear layers only)
  float *fz = nullptr, *lgate = nullptr;    // gla: (N, R) x W_down^T, (N, HD) log forget gates
  float* attn = nullptr;                    // (N, HD) attention output before o_proj
  float *h2 = nullptr, *rstd2 = nullptr;    // post_attention_layernorm
  float* gu = nullptr;                      // (N, 2F) [gate | up]
  float* act = nullptr;                     // (N, F) swiglu output
  // The block's FP8 GEMMs (enable_fp8; null = not in FP8), owned by the model.
  Fp8Linear *fp8_qkv = nullptr, *fp8_g = nullptr, *fp8_o = nullptr, *fp8_gu = nullptr, *fp8_d = nullptr;
};

LinearLlama::LinearLlama(const ModelConfig& cfg, int B, int T, bool bf16_compute, Communicator* sp, Device device)
    : cfg_(cfg), B_(B), T_(T), bf16_(bf16_compute), scratch_(device), ctx_{device, nullptr, &scratch_},
      table_(make_param_table(cfg)), params_(table_, device), grads_(table_, device),
      gemm_(bf16_compute ? GemmPrecision::bf16 : GemmPrecision::fp32), head_(ctx_, gemm_) {
  if (bf16_) compute_params_ = FlatBuffer(table_, device);
  const size_t N = static_cast<size_t>(B) * T, C = cfg.hidden_size, F = cfg.intermediate_size;
  const size_t HD = static_cast<size_t>(cfg.num_attention_heads) * cfg.head_dim();
  const size_t QKV = HD + 2 * static_cast<size_t>(cfg.kv_heads()) * cfg.head_dim();
  BufferPlan plan;
  bool gated = false;
  int forget_rank = 0;  // the widest gla forget-gate rank (0 = no gla layer)
  // The ops' scratch: each attention core reserves what its kernels take, and
  // the norms' below; the arena ends up holding the largest of them.
  for (int i = 0; i < cfg.num_hidden_layers; ++i) {
    auto b = std::make_unique<Block>();
    b->kind = cfg.layer_kind(i);
    b->ln1 = layer_param(i, "input_layernorm.weight");
    b->wqkv = layer_param(i, "self_attn.q_proj.weight");
    b->wg = table_.find(layer_name(i, "self_attn.g_proj.weight"));
    b->wo = layer_param(i, "self_attn.o_proj.weight");
    b->ln2 = layer_param(i, "post_attention_layernorm.weight");
    b->wgu = layer_param(i, "mlp.gate_proj.weight");
    b->wd = layer_param(i, "mlp.down_proj.weight");
    b->wfd = table_.find(layer_name(i, "self_attn.forget_gate_down.weight"));
    if (b->wfd >= 0) {
      b->wfu = layer_param(i, "self_attn.forget_gate_up.weight");
      b->bfu = layer_param(i, "self_attn.forget_gate_up.bias");
      b->gate_rank = cfg.linear_attention.gate_rank;
      b->gate_tau = static_cast<float>(cfg.linear_attention.gate_tau);
      forget_rank = std::max(forget_rank, b->gate_rank);
    }
    if (b->kind == 'L') {
      b->linear = std::make_unique<LinearAttentionCore>(ctx_, make_linear_attention_spec(cfg, i), B, T, sp);
    } else {
      b->softmax = std::make_unique<SoftmaxAttentionCore>(ctx_, cfg, B, T, sp);
    }
    plan.add(&b->x_in, N * C);
    plan.add(&b->x_mid, N * C);
    plan.add(&b->h1, N * C);
    plan.add(&b->rstd1, N);
    plan.add(&b->qkv, N * QKV);
    if (b->wg >= 0) plan.add(&b->g, N * HD), gated = true;
    if (b->wfd >= 0) plan.add(&b->fz, N * b->gate_rank), plan.add(&b->lgate, N * HD);
    plan.add(&b->attn, N * HD);
    plan.add(&b->h2, N * C);
    plan.add(&b->rstd2, N);
    plan.add(&b->gu, N * 2 * F);
    plan.add(&b->act, N * F);
    blocks_.push_back(std::move(b));
  }
  plan.add(&x_final_, N * C);
  plan.add(&h_final_, N * C);
  plan.add(&rstd_final_, N);
  plan.add(&dh_final_, N * C);
  plan.add(&dx_, N * C);
  plan.add(&d_act_, N * F);
  plan.add(&d_gu_, N * 2 * F);
  plan.add(&d_h_, N * C);
  plan.add(&d_attn_, N * HD);
  plan.add(&d_qkv_, N * QKV);
  if (gated) plan.add(&d_g_, N * HD);  // gated linear layers only
  if (forget_rank > 0) plan.add(&d_lg_, N * HD), plan.add(&d_fz_, N * forget_rank);  // gla layers only
  if (bf16_) plan.add(&d_res_, N * C);  // the bf16 rounding of the residual gradient
  activations_ = plan.allocate(ctx_.device);
  tokens_ = Tensor::zeros({static_cast<int64_t>(N)}, DType::I32, ctx_.device);
  targets_ = Tensor::zeros({static_cast<int64_t>(N)}, DType::I32, ctx_.device);
  // The ops' scratch, reserved once for the largest of them (the gradient
  // norm over grads_ included: the trainer runs it on this context).
  size_t gemm_scratch = head_.scratch_bytes(static_cast<int>(N), static_cast<int>(C), cfg.vocab_size);
  if (bf16_) {  // the largest of the blocks' GEMMs, forward and backward
    const int n = static_cast<int>(N), c = static_cast<int>(C), f = static_cast<int>(F);
    const int hd = static_cast<int>(HD), qkv = static_cast<int>(QKV);
    for (const auto& [rows, cols, inner] : {std::array<int, 3>{n, qkv, c}, {n, c, qkv}, {qkv, c, n}, {n, 2 * f, c},
                                            {n, c, 2 * f}, {2 * f, c, n}, {n, c, f}, {n, f, c}, {c, f, n},
                                            {n, c, hd}, {n, hd, c}, {c, hd, n}, {hd, c, n}})
      gemm_scratch = std::max(gemm_scratch, matmul_bf16_scratch_bytes(ctx_.device, rows, cols, inner));
    const int r = forget_rank;  // the gla forget gate's GEMMs
    if (r > 0)
      for (const auto& [rows, cols, inner] : {std::array<int, 3>{n, r, c}, {n, hd, r}, {n, r, hd}, {n, c, r},
                                              {hd, r, n}, {r, c, n}})
        gemm_scratch = std::max(gemm_scratch, matmul_bf16_scratch_bytes(ctx_.device, rows, cols, inner));
  }
  scratch_.reserve(std::max({rmsnorm_backward_scratch_bytes(ctx_.device, static_cast<int>(N), static_cast<int>(C)),
                             grad_norm_squared_scratch_bytes(ctx_.device, grads_.numel()), gemm_scratch}));
  head_.reserve(static_cast<int>(N), cfg.vocab_size);
}

LinearLlama::~LinearLlama() = default;

int LinearLlama::layer_param(int layer, const char* suffix) const {
  const int idx = table_.find(layer_name(layer, suffix));
  LT_CHECK(idx >= 0, "[LinearLlama] missing parameter ", layer_name(layer, suffix));
  return idx;
}

void LinearLlama::init_weights(uint64_t seed) {
  Rng rng = Rng::stream(seed, /*stream_id=*/0x1417);
  const double std_base = cfg_.initializer_range;
  const double std_resid = std_base / std::sqrt(2.0 * cfg_.num_hidden_layers);
  HostStaging host;
  float* all = host.write(ctx_, params_.data(), params_.numel());  // padding stays zero
  for (const auto& v : table_.views()) {
    float* p = all + v.offset;
    if (v.shape.size() == 1) {  // norm weights 1, biases (the gla forget gate's) 0
      const bool bias = v.name.size() > 5 && v.name.compare(v.name.size() - 5, 5, ".bias") == 0;
      for (int64_t i = 0; i < v.numel; ++i) p[i] = bias ? 0.0f : 1.0f;
      continue;
    }
    const bool resid = v.name.find("o_proj") != std::string::npos ||
                       v.name.find("down_proj") != std::string::npos;
    const double s = resid ? std_resid : std_base;
    for (int64_t i = 0; i < v.numel; ++i) p[i] = static_cast<float>(rng.normal() * s);
  }
  host.publish(ctx_, params_.data(), params_.numel());
}

const float* LinearLlama::weight(int idx) const {
  // 1-D tensors (the RMSNorm gains) scale elementwise, they are no GEMM
  // operand: they stay f32 under bf16 compute, as the residual stream does.
  // Rounding them cost ~2.5% final val-loss on tiny.yaml (bench/RESULTS.md).
  const TensorView& v = table_.view(idx);
  return (bf16_ && v.shape.size() > 1 ? compute_params_ : params_).at(v);
}

void LinearLlama::prepare_compute_weights() {
  if (!bf16_) return;
  round_to_bf16(ctx_, compute_params_.data(), params_.data(), params_.numel());
}

namespace {
// Rounds an activation that feeds a GEMM to bf16 (bf16 compute only).
void round_operand(const Context& ctx, bool bf16, float* x, size_t n) {
  if (bf16) round_to_bf16(ctx, x, x, static_cast<int64_t>(n));
}

// `count` int32 values from the host into `dst` on ctx's device.
void upload_ids(const Context& ctx, Tensor& dst, const int32_t* host, int count) {
  copy_from_host(ctx.device, dst.raw(), host, sizeof(int32_t) * count);
}
}  // namespace

void LinearLlama::forward(const int32_t* tokens) {
  const int N = B_ * T_, C = cfg_.hidden_size, F = cfg_.intermediate_size, V = cfg_.vocab_size;
  const int HD = cfg_.num_attention_heads * cfg_.head_dim();
  const int QKV = HD + 2 * cfg_.kv_heads() * cfg_.head_dim();
  const size_t NC = static_cast<size_t>(N) * C;
  const float eps = static_cast<float>(cfg_.rms_norm_eps);
  const auto P = [&](int idx) { return weight(idx); };
  if (ctx_.device != Device::CPU) check_token_ids(tokens, N, V);  // the CPU op checks its own input
  upload_ids(ctx_, tokens_, tokens, N);
  const int32_t* ids = tokens_.data<int32_t>();
  prepare_compute_weights();

  float* x = blocks_.empty() ? x_final_ : blocks_[0]->x_in;
  embedding_forward(ctx_, x, ids, params_.at(table_.view(0)), N, C, V);  // a lookup: stays f32
  for (size_t i = 0; i < blocks_.size(); ++i) {
    Block& b = *blocks_[i];
    // Attention sub-block: x_mid = x_in + o_proj(attn(norm(x_in)))
    rmsnorm_forward(ctx_, b.h1, b.rstd1, b.x_in, P(b.ln1), N, C, eps);
    round_operand(ctx_, bf16_, b.h1, NC);
    block_linear_forward(b.fp8_qkv, b.qkv, b.h1, b.wqkv, N, C, QKV, false);
    if (b.linear) {
      if (b.wg >= 0) block_linear_forward(b.fp8_g, b.g, b.h1, b.wg, N, C, HD, false);
      if (b.wfd >= 0) {  // gla forget gate, in the model's GEMM precision (never FP8)
        linear_forward(ctx_, gemm_, b.fz, b.h1, P(b.wfd), N, C, b.gate_rank);
        round_operand(ctx_, bf16_, b.fz, static_cast<size_t>(N) * b.gate_rank);
        linear_forward(ctx_, gemm_, b.lgate, b.fz, P(b.wfu), N, b.gate_rank, HD);
        gla_gate_forward(ctx_, b.lgate, b.lgate, params_.at(table_.view(b.bfu)), N, HD, b.gate_tau);
      }
      b.linear->forward(b.attn, b.qkv, b.wg >= 0 ? b.g : nullptr, nullptr, nullptr, b.lgate);
    } else {
      b.softmax->forward(b.attn, b.qkv, 0);
    }
    round_operand(ctx_, bf16_, b.attn, static_cast<size_t>(N) * HD);
    copy_floats(ctx_, b.x_mid, b.x_in, static_cast<int64_t>(NC));
    block_linear_forward(b.fp8_o, b.x_mid, b.attn, b.wo, N, HD, C, true);
    // MLP sub-block: x_out = x_mid + down(swiglu(gate_up(norm(x_mid))))
    rmsnorm_forward(ctx_, b.h2, b.rstd2, b.x_mid, P(b.ln2), N, C, eps);
    round_operand(ctx_, bf16_, b.h2, NC);
    block_linear_forward(b.fp8_gu, b.gu, b.h2, b.wgu, N, C, 2 * F, false);
    swiglu_forward(ctx_, b.act, b.gu, N, F);
    round_operand(ctx_, bf16_, b.act, static_cast<size_t>(N) * F);
    float* x_out = i + 1 < blocks_.size() ? blocks_[i + 1]->x_in : x_final_;
    copy_floats(ctx_, x_out, b.x_mid, static_cast<int64_t>(NC));
    block_linear_forward(b.fp8_d, x_out, b.act, b.wd, N, F, C, true);
  }
  rmsnorm_forward(ctx_, h_final_, rstd_final_, x_final_, P(table_.find("model.norm.weight")), N, C, eps);
  round_operand(ctx_, bf16_, h_final_, NC);
}

CrossEntropyStats LinearLlama::forward_loss(const int32_t* tokens, const int32_t* targets) {
  training_ = false;
  forward(tokens);
  const int N = B_ * T_;
  upload_ids(ctx_, targets_, targets, N);
  const float* w_head = weight(table_.find(cfg_.tie_word_embeddings ? "model.embed_tokens.weight"
                                                                     : "lm_head.weight"));
  return head_.run(h_final_, w_head, targets_.data<int32_t>(), targets, N, cfg_.hidden_size, cfg_.vocab_size,
                   0.0f, nullptr, nullptr);
}

CrossEntropyStats LinearLlama::forward_backward(const int32_t* tokens, const int32_t* targets,
                                                float grad_scale) {
  const int N = B_ * T_, C = cfg_.hidden_size, F = cfg_.intermediate_size, V = cfg_.vocab_size;
  const int HD = cfg_.num_attention_heads * cfg_.head_dim();
  const int QKV = HD + 2 * cfg_.kv_heads() * cfg_.head_dim();
  const auto P = [&](int idx) { return weight(idx); };
  const auto G = [&](int idx) { return grads_.at(table_.view(idx)); };
  training_ = true;
  forward(tokens);
  upload_ids(ctx_, targets_, targets, N);

  const char* head_name = cfg_.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight";
  const CrossEntropyStats stats = head_.run(h_final_, P(table_.find(head_name)), targets_.data<int32_t>(), targets,
                                            N, C, V, grad_scale, dh_final_, grads_.at(table_.at(head_name)));

  // dx_ is the residual stream's gradient, walked from the top down.
  zero_floats(ctx_, dx_, static_cast<int64_t>(N) * C);
  const TensorView& norm_w = table_.at("model.norm.weight");
  rmsnorm_backward(ctx_, dx_, grads_.at(norm_w), dh_final_, x_final_, P(table_.find(norm_w.name)), rstd_final_, N,
                   C);
  if (grads_ready_) {
    std::vector<int> ready = {table_.find(norm_w.name)};
    if (!cfg_.tie_word_embeddings) ready.push_back(table_.find("lm_head.weight"));
    grads_ready_(ready);
  }

  for (size_t li = blocks_.size(); li-- > 0;) {
    Block& b = *blocks_[li];
    // MLP: x_out = x_mid + act @ Wd^T
    block_linear_backward(b.fp8_d, d_act_, b.wd, residual_grad_operand(), b.act, N, F, C);
    swiglu_backward(ctx_, d_gu_, d_act_, b.gu, N, F);
    round_operand(ctx_, bf16_, d_gu_, static_cast<size_t>(N) * 2 * F);
    block_linear_backward(b.fp8_gu, d_h_, b.wgu, d_gu_, b.h2, N, C, 2 * F);
    rmsnorm_backward(ctx_, dx_, G(b.ln2), d_h_, b.x_mid, P(b.ln2), b.rstd2, N, C);
    // Attention: x_mid = x_in + attn @ Wo^T
    block_linear_backward(b.fp8_o, d_attn_, b.wo, residual_grad_operand(), b.attn, N, HD, C);
    if (b.linear) {
      b.linear->backward(d_qkv_, b.wg >= 0 ? d_g_ : nullptr, d_attn_, nullptr, nullptr,
                         b.wfd >= 0 ? d_lg_ : nullptr);
    } else {
      b.softmax->backward(d_qkv_, d_attn_);
    }
    round_operand(ctx_, bf16_, d_qkv_, static_cast<size_t>(N) * QKV);
    block_linear_backward(b.fp8_qkv, d_h_, b.wqkv, d_qkv_, b.h1, N, C, QKV);
    // The gate is a second branch from h1: d_h += d_g @ Wg, dWg += d_g^T h1.
    if (b.wg >= 0) round_operand(ctx_, bf16_, d_g_, static_cast<size_t>(N) * HD);
    if (b.wg >= 0) block_linear_backward(b.fp8_g, d_h_, b.wg, d_g_, b.h1, N, C, HD, /*accumulate_dinp=*/true);
    if (b.wfd >= 0) {  // the gla forget gate, a third branch from h1
      gla_gate_backward(ctx_, d_lg_, G(b.bfu), d_lg_, b.lgate, N, HD, b.gate_tau);
      round_operand(ctx_, bf16_, d_lg_, static_cast<size_t>(N) * HD);
      linear_backward(ctx_, gemm_, d_fz_, G(b.wfu), d_lg_, b.fz, P(b.wfu), N, b.gate_rank, HD);
      round_operand(ctx_, bf16_, d_fz_, static_cast<size_t>(N) * b.gate_rank);
      linear_backward(ctx_, gemm_, d_h_, G(b.wfd), d_fz_, b.h1, P(b.wfd), N, C, b.gate_rank, true);
    }
    rmsnorm_backward(ctx_, dx_, G(b.ln1), d_h_, b.x_in, P(b.ln1), b.rstd1, N, C);
    if (grads_ready_) {
      // k_proj, v_proj follow q_proj and up_proj follows gate_proj (make_param_table).
      std::vector<int> ready = {b.ln1, b.wqkv, b.wqkv + 1, b.wqkv + 2, b.wo,
                                b.ln2, b.wgu,  b.wgu + 1,  b.wd};
      if (b.wg >= 0) ready.push_back(b.wg);
      if (b.wfd >= 0) ready.insert(ready.end(), {b.wfd, b.wfu, b.bfu});
      grads_ready_(ready);
    }
  }
  embedding_backward(ctx_, grads_.at(table_.view(0)), dx_, tokens_.data<int32_t>(), N, C);
  if (grads_ready_) grads_ready_({0});  // the embedding (also the head when tied)
  return stats;
}

void LinearLlama::block_linear_forward(Fp8Linear* f, float* out, const float* inp, int w, int N, int C, int OC,
                                       bool accumulate) {
  if (!f) {
    if (accumulate) linear_forward_accumulate(ctx_, gemm_, out, inp, weight(w), N, C, OC);
    else linear_forward(ctx_, gemm_, out, inp, weight(w), N, C, OC);
    return;
  }
  if (training_) fp8_quantised_[0] += static_cast<int64_t>(OC) * C, fp8_quantised_[1] += static_cast<int64_t>(N) * C;
  f->forward(ctx_, out, inp, weight(w), N, C, OC, accumulate, training_, reinterpret_cast<Fp8Counts*>(fp8_counts_.raw()),
             fp8_options_.reduce);
}

void LinearLlama::block_linear_backward(Fp8Linear* f, float* dinp, int w, const float* dout, const float* inp, int N,
                                        int C, int OC, bool accumulate_dinp) {
  float* dw = grads_.at(table_.view(w));
  if (!f) {
    linear_backward(ctx_, gemm_, dinp, dw, dout, inp, weight(w), N, C, OC, accumulate_dinp);
    return;
  }
  fp8_quantised_[2] += static_cast<int64_t>(N) * OC;
  f->backward(ctx_, dinp, dw, dout, inp, weight(w), N, C, OC, accumulate_dinp, reinterpret_cast<Fp8Counts*>(fp8_counts_.raw()),
              fp8_options_.reduce);
}

void LinearLlama::enable_fp8(const Fp8ModelOptions& options) {
  LT_CHECK(fp8_.empty(), "[LinearLlama] enable_fp8 called twice");
  fp8_options_ = options;
  const int N = B_ * T_, C = cfg_.hidden_size, F = cfg_.intermediate_size;
  const int HD = cfg_.num_attention_heads * cfg_.head_dim();
  const int QKV = HD + 2 * cfg_.kv_heads() * cfg_.head_dim();
  size_t scratch = 0;
  // One FP8 GEMM for the `count` adjacent tensors from `first`, when all are selected.
  const auto make = [&](int first, int count, int in, int out) -> Fp8Linear* {
    if (first < 0) return nullptr;
    int chosen = 0;
    std::string names;
    for (int t = first; t < first + count; ++t) {
      const std::string& name = table_.view(t).name;
      chosen += options.selected(name) ? 1 : 0;
      names += str_cat(t > first ? ", " : "", name);
    }
    if (chosen == 0) return nullptr;
    if (chosen < count)
      throw ConfigError(str_cat("precision.fp8.include/exclude: ", names, " share one GEMM, so they run in FP8 "
                                "together or not at all, but the globs select only some of them; select all or "
                                "none"));
    std::string prefix = table_.view(first).name;
    if (prefix.size() > 7 && prefix.compare(prefix.size() - 7, 7, ".weight") == 0) prefix.resize(prefix.size() - 7);
    fp8_.push_back(std::make_unique<Fp8Linear>(prefix, options.settings));
    scratch = std::max(scratch, Fp8Linear::scratch_bytes(ctx_.device, options.settings, N, in, out));
    return fp8_.back().get();
  };
  for (auto& bp : blocks_) {
    Block& b = *bp;
    b.fp8_qkv = make(b.wqkv, 3, C, QKV);
    b.fp8_g = make(b.wg, 1, C, HD);
    b.fp8_o = make(b.wo, 1, HD, C);
    b.fp8_gu = make(b.wgu, 2, C, 2 * F);
    b.fp8_d = make(b.wd, 1, F, C);
  }
  if (fp8_.empty()) return;
  scratch_.reserve(std::max(scratch_.capacity(), scratch));
  fp8_counts_ = Tensor::zeros({kFp8Classes * 3}, DType::I64, ctx_.device);
}

std::vector<std::string> LinearLlama::fp8_gemms() const {
  std::vector<std::string> out;
  for (const auto& f : fp8_) out.push_back(f->name());
  return out;
}

void LinearLlama::fp8_end_step() {
  std::vector<float> amax;
  for (const auto& f : fp8_) {
    const size_t at = amax.size();
    amax.resize(at + static_cast<size_t>(f->amax_count()));
    f->local_amaxes(amax.data() + at);
  }
  if (amax.empty()) return;
  if (fp8_options_.reduce) fp8_options_.reduce(amax.data(), static_cast<int>(amax.size()));
  size_t at = 0;
  for (const auto& f : fp8_) {
    f->end_step(amax.data() + at);
    at += static_cast<size_t>(f->amax_count());
  }
}

Fp8StepCounts LinearLlama::take_fp8_counts() {
  Fp8StepCounts out;
  if (fp8_.empty()) return out;
  static_assert(sizeof(Fp8Counts) == 3 * sizeof(int64_t), "Fp8Counts is three i64");
  copy_to_host(ctx_.device, out.by_class, fp8_counts_.raw(), sizeof(out.by_class));
  const Fp8StepCounts zero;
  copy_from_host(ctx_.device, fp8_counts_.raw(), zero.by_class, sizeof(zero.by_class));
  for (int c = 0; c < kFp8Classes; ++c) out.quantised[c] = fp8_quantised_[c], fp8_quantised_[c] = 0;
  return out;
}

void LinearLlama::add_fp8_state(RunState& state, const std::string& part) {
  for (const auto& f : fp8_) f->add_to(state, part, "fp8/");
}

const float* LinearLlama::residual_grad_operand() {
  if (!bf16_) return dx_;
  // The residual stream's gradient stays f32; the GEMM reads its bf16 rounding.
  round_to_bf16(ctx_, d_res_, dx_, static_cast<int64_t>(B_) * T_ * cfg_.hidden_size);
  return d_res_;
}

size_t LinearLlama::activation_bytes() const {
  size_t bytes = activations_.nbytes() + tokens_.nbytes() + targets_.nbytes() + head_.workspace_bytes() +
                 scratch_.capacity();
  for (const auto& b : blocks_)
    bytes += b->linear ? b->linear->saved_bytes() : b->softmax->saved_bytes();
  return bytes;
}

}  // namespace lintrain
