#include "layers/model.h"

#include <cmath>
#include <algorithm>
#include <cstring>

#include "layers/linear.h"
#include "layers/linear_attention.h"
#include "layers/softmax_attention.h"
#include "runtime/cpu/gemm.h"
#include "runtime/ops.h"
#include "runtime/rng.h"

namespace lintrain {

namespace {
std::string layer_name(int i, const char* suffix) {
  return str_cat("model.layers.", i, ".", suffix);
}
bool has_gate(const ModelConfig& cfg, int layer) {
  return cfg.layer_kind(layer) == 'L' && make_linear_attention_spec(cfg, layer).output_gate;
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
  std::unique_ptr<LinearAttentionCore> linear;
  std::unique_ptr<SoftmaxAttentionCore> softmax;
  // Saved for backward; shapes with N = B*T tokens.
  std::vector<float> x_in;      // (N, C) block input (residual stream)
  std::vector<float> x_mid;     // (N, C) after the attention residual
  std::vector<float> h1, rstd1;  // (N, C), (N): input_layernorm
  std::vector<float> qkv;       // (N, HD + 2 KVD)
  std::vector<float> g;         // (N, HD) gate pre-activation (gated linear layers)
  std::vector<float> attn;      // (N, HD) attention output before o_proj
  std::vector<float> h2, rstd2;  // post_attention_layernorm
  std::vector<float> gu;        // (N, 2F) [gate | up]
  std::vector<float> act;       // (N, F) swiglu output
};

LinearLlama::LinearLlama(const ModelConfig& cfg, int B, int T, bool bf16_compute, Communicator* sp)
    : cfg_(cfg), B_(B), T_(T), bf16_(bf16_compute), table_(make_param_table(cfg)), params_(table_),
      grads_(table_) {
  if (bf16_) compute_params_ = FlatBuffer(table_);
  const size_t N = static_cast<size_t>(B) * T, C = cfg.hidden_size, F = cfg.intermediate_size;
  const size_t HD = static_cast<size_t>(cfg.num_attention_heads) * cfg.head_dim();
  const size_t QKV = HD + 2 * static_cast<size_t>(cfg.kv_heads()) * cfg.head_dim();
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
    if (b->kind == 'L') {
      b->linear = std::make_unique<LinearAttentionCore>(make_linear_attention_spec(cfg, i), B, T, sp);
    } else {
      b->softmax = std::make_unique<SoftmaxAttentionCore>(cfg, B, T, sp);
    }
    b->x_in.resize(N * C);
    b->x_mid.resize(N * C);
    b->h1.resize(N * C);
    b->rstd1.resize(N);
    b->qkv.resize(N * QKV);
    if (b->wg >= 0) b->g.resize(N * HD);
    b->attn.resize(N * HD);
    b->h2.resize(N * C);
    b->rstd2.resize(N);
    b->gu.resize(N * 2 * F);
    b->act.resize(N * F);
    blocks_.push_back(std::move(b));
  }
  x_final_.resize(N * C);
  h_final_.resize(N * C);
  rstd_final_.resize(N);
  dh_final_.resize(N * C);
  dx_.resize(N * C);
  tokens_.resize(N);
  // The ops' scratch, reserved once for the largest of them (the gradient
  // norm over grads_ included: the trainer runs it on this context).
  ctx_.scratch = &scratch_;
  scratch_.reserve(std::max(rmsnorm_backward_scratch_bytes(ctx_.device, static_cast<int>(N), static_cast<int>(C)),
                            grad_norm_squared_scratch_bytes(ctx_.device, grads_.numel())));
  d_act_.resize(N * F);
  d_gu_.resize(N * 2 * F);
  d_h_.resize(N * C);
  d_attn_.resize(N * HD);
  d_qkv_.resize(N * QKV);
  for (const auto& b : blocks_)
    if (b->wg >= 0) d_g_.resize(N * HD);  // gated linear layers only
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
  for (const auto& v : table_.views()) {
    float* p = params_.at(v);
    if (v.shape.size() == 1) {
      for (int64_t i = 0; i < v.numel; ++i) p[i] = 1.0f;
      continue;
    }
    const bool resid = v.name.find("o_proj") != std::string::npos ||
                       v.name.find("down_proj") != std::string::npos;
    const double s = resid ? std_resid : std_base;
    for (int64_t i = 0; i < v.numel; ++i) p[i] = static_cast<float>(rng.normal() * s);
  }
}

const float* LinearLlama::weight(int idx) const {
  return (bf16_ ? compute_params_ : params_).at(table_.view(idx));
}

void LinearLlama::prepare_compute_weights() {
  if (!bf16_) return;
  const float* p = params_.data();
  float* q = compute_params_.data();
  const int64_t n = params_.numel();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) q[i] = round_to_bf16(p[i]);
}

namespace {
// Rounds an activation that feeds a GEMM to bf16 (bf16 compute only).
void round_operand(bool bf16, std::vector<float>& x) {
  if (!bf16) return;
  float* p = x.data();
  const int64_t n = static_cast<int64_t>(x.size());
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) p[i] = round_to_bf16(p[i]);
}
}  // namespace

void LinearLlama::forward(const int32_t* tokens) {
  const int N = B_ * T_, C = cfg_.hidden_size, F = cfg_.intermediate_size, V = cfg_.vocab_size;
  const int HD = cfg_.num_attention_heads * cfg_.head_dim();
  const int QKV = HD + 2 * cfg_.kv_heads() * cfg_.head_dim();
  const float eps = static_cast<float>(cfg_.rms_norm_eps);
  const auto P = [&](int idx) { return weight(idx); };
  std::memcpy(tokens_.data(), tokens, sizeof(int32_t) * N);
  prepare_compute_weights();

  float* x = blocks_.empty() ? x_final_.data() : blocks_[0]->x_in.data();
  embedding_forward(ctx_, x, tokens, params_.at(table_.view(0)), N, C, V);  // a lookup: stays f32
  for (size_t i = 0; i < blocks_.size(); ++i) {
    Block& b = *blocks_[i];
    // Attention sub-block: x_mid = x_in + o_proj(attn(norm(x_in)))
    rmsnorm_forward(ctx_, b.h1.data(), b.rstd1.data(), b.x_in.data(), P(b.ln1), N, C, eps);
    round_operand(bf16_, b.h1);
    linear_forward(b.qkv.data(), b.h1.data(), P(b.wqkv), N, C, QKV);
    if (b.linear) {
      if (b.wg >= 0) linear_forward(b.g.data(), b.h1.data(), P(b.wg), N, C, HD);
      b.linear->forward(b.attn.data(), b.qkv.data(), b.wg >= 0 ? b.g.data() : nullptr, nullptr,
                        nullptr);
    } else {
      b.softmax->forward(b.attn.data(), b.qkv.data(), 0);
    }
    round_operand(bf16_, b.attn);
    std::memcpy(b.x_mid.data(), b.x_in.data(), sizeof(float) * N * C);
    linear_forward_accumulate(b.x_mid.data(), b.attn.data(), P(b.wo), N, HD, C);
    // MLP sub-block: x_out = x_mid + down(swiglu(gate_up(norm(x_mid))))
    rmsnorm_forward(ctx_, b.h2.data(), b.rstd2.data(), b.x_mid.data(), P(b.ln2), N, C, eps);
    round_operand(bf16_, b.h2);
    linear_forward(b.gu.data(), b.h2.data(), P(b.wgu), N, C, 2 * F);
    swiglu_forward(ctx_, b.act.data(), b.gu.data(), N, F);
    round_operand(bf16_, b.act);
    float* x_out = i + 1 < blocks_.size() ? blocks_[i + 1]->x_in.data() : x_final_.data();
    std::memcpy(x_out, b.x_mid.data(), sizeof(float) * N * C);
    linear_forward_accumulate(x_out, b.act.data(), P(b.wd), N, F, C);
  }
  rmsnorm_forward(ctx_, h_final_.data(), rstd_final_.data(), x_final_.data(),
                  P(table_.find("model.norm.weight")), N, C, eps);
  round_operand(bf16_, h_final_);
}

CrossEntropyStats LinearLlama::forward_loss(const int32_t* tokens, const int32_t* targets) {
  forward(tokens);
  const float* w_head = weight(table_.find(cfg_.tie_word_embeddings ? "model.embed_tokens.weight"
                                                                     : "lm_head.weight"));
  return head_.run(h_final_.data(), w_head, targets, B_ * T_, cfg_.hidden_size, cfg_.vocab_size,
                   0.0f, nullptr, nullptr);
}

CrossEntropyStats LinearLlama::forward_backward(const int32_t* tokens, const int32_t* targets,
                                                float grad_scale) {
  const int N = B_ * T_, C = cfg_.hidden_size, F = cfg_.intermediate_size, V = cfg_.vocab_size;
  const int HD = cfg_.num_attention_heads * cfg_.head_dim();
  const int QKV = HD + 2 * cfg_.kv_heads() * cfg_.head_dim();
  const auto P = [&](int idx) { return weight(idx); };
  const auto G = [&](int idx) { return grads_.at(table_.view(idx)); };
  forward(tokens);

  const char* head_name = cfg_.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight";
  const CrossEntropyStats stats =
      head_.run(h_final_.data(), P(table_.find(head_name)), targets, N, C, V, grad_scale,
                dh_final_.data(), grads_.at(table_.at(head_name)));

  // dx_ is the residual stream's gradient, walked from the top down.
  std::fill(dx_.begin(), dx_.end(), 0.0f);
  const TensorView& norm_w = table_.at("model.norm.weight");
  rmsnorm_backward(ctx_, dx_.data(), grads_.at(norm_w), dh_final_.data(), x_final_.data(),
                   P(table_.find(norm_w.name)), rstd_final_.data(), N, C);
  if (grads_ready_) {
    std::vector<int> ready = {table_.find(norm_w.name)};
    if (!cfg_.tie_word_embeddings) ready.push_back(table_.find("lm_head.weight"));
    grads_ready_(ready);
  }

  for (size_t li = blocks_.size(); li-- > 0;) {
    Block& b = *blocks_[li];
    // MLP: x_out = x_mid + act @ Wd^T
    linear_backward(d_act_.data(), G(b.wd), dx_.data(), b.act.data(), P(b.wd), N, F, C);
    swiglu_backward(ctx_, d_gu_.data(), d_act_.data(), b.gu.data(), N, F);
    linear_backward(d_h_.data(), G(b.wgu), d_gu_.data(), b.h2.data(), P(b.wgu), N, C, 2 * F);
    rmsnorm_backward(ctx_, dx_.data(), G(b.ln2), d_h_.data(), b.x_mid.data(), P(b.ln2), b.rstd2.data(), N, C);
    // Attention: x_mid = x_in + attn @ Wo^T
    linear_backward(d_attn_.data(), G(b.wo), dx_.data(), b.attn.data(), P(b.wo), N, HD, C);
    if (b.linear) {
      b.linear->backward(d_qkv_.data(), b.wg >= 0 ? d_g_.data() : nullptr, d_attn_.data(), nullptr,
                         nullptr);
    } else {
      b.softmax->backward(d_qkv_.data(), d_attn_.data());
    }
    linear_backward(d_h_.data(), G(b.wqkv), d_qkv_.data(), b.h1.data(), P(b.wqkv), N, C, QKV);
    if (b.wg >= 0) {
      // The gate is a second branch from h1: d_h += d_g @ Wg (beta = 1), dWg += d_g^T h1.
      gemm(false, false, N, C, HD, 1.0f, d_g_.data(), HD, P(b.wg), C, 1.0f, d_h_.data(), C);
      linear_backward(nullptr, G(b.wg), d_g_.data(), b.h1.data(), P(b.wg), N, C, HD);
    }
    rmsnorm_backward(ctx_, dx_.data(), G(b.ln1), d_h_.data(), b.x_in.data(), P(b.ln1), b.rstd1.data(), N, C);
    if (grads_ready_) {
      // k_proj, v_proj follow q_proj and up_proj follows gate_proj (make_param_table).
      std::vector<int> ready = {b.ln1, b.wqkv, b.wqkv + 1, b.wqkv + 2, b.wo,
                                b.ln2, b.wgu,  b.wgu + 1,  b.wd};
      if (b.wg >= 0) ready.push_back(b.wg);
      grads_ready_(ready);
    }
  }
  embedding_backward(ctx_, grads_.at(table_.view(0)), dx_.data(), tokens_.data(), N, C);
  if (grads_ready_) grads_ready_({0});  // the embedding (also the head when tied)
  return stats;
}

size_t LinearLlama::activation_bytes() const {
  size_t n = 0;
  for (const auto& b : blocks_) {
    n += b->x_in.size() + b->x_mid.size() + b->h1.size() + b->rstd1.size() + b->qkv.size() +
         b->g.size() + b->attn.size() + b->h2.size() + b->rstd2.size() + b->gu.size() +
         b->act.size();
  }
  n += x_final_.size() + h_final_.size() + rstd_final_.size();
  size_t bytes = n * sizeof(float) + head_.workspace_bytes() + scratch_.capacity();
  for (const auto& b : blocks_)
    bytes += b->linear ? b->linear->saved_bytes() : b->softmax->saved_bytes();
  return bytes;
}

}  // namespace lintrain
