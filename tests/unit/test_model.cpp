// The whole Linear-Llama model: its gradient against finite differences of its
// own loss, for every tensor, on tiny hybrid configs covering each
// linear-attention variant, grouped-query attention and tied embeddings.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "layers/model.h"
#include "runtime/rng.h"

using namespace lintrain;

namespace {

ModelConfig tiny_model(const std::string& variant, const std::string& pattern) {
  ModelConfig m;
  m.vocab_size = 23;
  m.hidden_size = 16;
  m.num_hidden_layers = 2;
  m.num_attention_heads = 4;
  m.num_key_value_heads = 2;
  m.intermediate_size = 24;
  m.layer_pattern = pattern;
  m.linear_attention.variant = variant;
  m.linear_attention.block_size = 3;  // T = 7 is not a multiple: the tail block is exercised
  m.initializer_range = 0.3;          // large enough that every nonlinearity matters
  return m;
}

struct Data {
  std::vector<int32_t> tokens, targets;
};

Data make_random_data(int B, int T, int V, Rng& rng) {
  Data d{std::vector<int32_t>(B * T), std::vector<int32_t>(B * T)};
  for (auto& t : d.tokens) t = static_cast<int32_t>(rng.below(V));
  for (auto& t : d.targets) t = static_cast<int32_t>(rng.below(V));
  d.targets[2] = -1;  // an ignored position
  return d;
}

double loss_at(LinearLlama& m, const Data& d) {
  const CrossEntropyStats s = m.forward_loss(d.tokens.data(), d.targets.data());
  return s.loss_sum / s.count;
}

// For each tensor, compares the analytic directional derivative g . u with the
// finite-difference derivative along a unit direction u mixing the tensor's
// own gradient (large signal) and random noise (catches errors orthogonal to
// g). The tiny heads (d = 4) with output norms make the loss strongly curved
// at init std 0.3: plain central differences at e = 1e-2 are off by ~1% from
// truncation alone (measured; it falls as e^2), so the difference is
// Richardson-extrapolated from e = 4e-3 and 2e-3 (error O(e^4) ~ 1e-8). The
// fp32 loss (~3, relative rounding ~1e-7) adds ~3e-7 / 2e-3 ~ 2e-4 absolute
// noise; tolerance 2e-3 relative plus 1e-5 absolute covers both.
void check_model_gradient(const ModelConfig& cfg) {
  const int B = 2, T = 7;
  LinearLlama model(cfg, B, T);
  model.init_weights(11);
  Rng rng(99);
  const Data d = make_random_data(B, T, cfg.vocab_size, rng);
  int64_t count = 0;
  for (int32_t t : d.targets) count += t >= 0;
  model.grads().zero();
  model.forward_backward(d.tokens.data(), d.targets.data(), 1.0f / count);

  for (const auto& v : model.table().views()) {
    const float* g = model.grads().at(v);
    float* p = model.params().at(v);
    std::vector<double> u(v.numel);
    double gn = 0, rn = 0;
    std::vector<double> r(v.numel);
    for (int64_t i = 0; i < v.numel; ++i) gn += double(g[i]) * g[i], r[i] = rng.normal(), rn += r[i] * r[i];
    gn = std::sqrt(gn), rn = std::sqrt(rn);
    double un = 0;
    for (int64_t i = 0; i < v.numel; ++i) {
      u[i] = g[i] + 0.5 * (gn > 0 ? gn : 1.0) * r[i] / rn;
      un += u[i] * u[i];
    }
    un = std::sqrt(un);
    double analytic = 0;
    for (int64_t i = 0; i < v.numel; ++i) u[i] /= un, analytic += g[i] * u[i];
    const std::vector<float> saved(p, p + v.numel);
    // Central difference along u with step e.
    auto central = [&](double e) {
      for (int64_t i = 0; i < v.numel; ++i) p[i] = static_cast<float>(saved[i] + e * u[i]);
      const double lp = loss_at(model, d);
      for (int64_t i = 0; i < v.numel; ++i) p[i] = static_cast<float>(saved[i] - e * u[i]);
      const double lm = loss_at(model, d);
      std::copy(saved.begin(), saved.end(), p);
      return (lp - lm) / (2 * e);
    };
    // Richardson extrapolation cancels the e^2 truncation term.
    const double e = 4e-3;
    const double numeric = (4 * central(e / 2) - central(e)) / 3;
    EXPECT_NEAR(analytic, numeric, 2e-3 * std::fabs(numeric) + 1e-5)
        << cfg.linear_attention.variant << " " << cfg.layer_pattern << " " << v.name;
  }
}

}  // namespace

TEST(ModelGradient, HybridLightning) { check_model_gradient(tiny_model("lightning", "LS")); }
TEST(ModelGradient, HybridRetNet) { check_model_gradient(tiny_model("retnet", "SL")); }
TEST(ModelGradient, GatedLinearAttention) {
  check_model_gradient(tiny_model("gla", "LS"));  // the paper's rank 16 and tau 16
  ModelConfig m = tiny_model("gla", "L");
  m.linear_attention.gate_rank = 3;
  m.linear_attention.gate_tau = 2.0;  // gates far from 1: the forget gate's gradient matters
  check_model_gradient(m);
}
TEST(ModelGradient, BasicLinearOnly) { check_model_gradient(tiny_model("basic", "L")); }
TEST(ModelGradient, SoftmaxOnlyTiedEmbeddings) {
  ModelConfig m = tiny_model("lightning", "S");
  m.tie_word_embeddings = true;
  check_model_gradient(m);
}

TEST(Model, ParameterNamesFollowHuggingFaceLlama) {
  ModelConfig m = tiny_model("lightning", "LS");
  const ParamTable t = make_param_table(m);
  for (const char* name :
       {"model.embed_tokens.weight", "model.layers.0.input_layernorm.weight",
        "model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight",
        "model.layers.0.self_attn.v_proj.weight", "model.layers.0.self_attn.o_proj.weight",
        "model.layers.0.self_attn.g_proj.weight", "model.layers.0.post_attention_layernorm.weight",
        "model.layers.0.mlp.gate_proj.weight", "model.layers.0.mlp.up_proj.weight",
        "model.layers.0.mlp.down_proj.weight", "model.layers.1.self_attn.q_proj.weight",
        "model.norm.weight", "lm_head.weight"})
    EXPECT_GE(t.find(name), 0) << name;
  EXPECT_EQ(t.find("model.layers.1.self_attn.g_proj.weight"), -1);  // softmax layer: no gate
  EXPECT_EQ(t.at("model.layers.0.self_attn.k_proj.weight").shape, (Shape{8, 16}));  // GQA: 2 kv heads
  EXPECT_EQ(t.at("model.layers.0.mlp.down_proj.weight").shape, (Shape{16, 24}));
}

TEST(Model, GlaForgetGateParameters) {
  ModelConfig m = tiny_model("gla", "LS");
  m.linear_attention.gate_rank = 5;
  const ParamTable t = make_param_table(m);
  // Low rank: hidden (16) -> rank (5) -> one gate per query head and key dimension (4 x 4).
  EXPECT_EQ(t.at("model.layers.0.self_attn.forget_gate_down.weight").shape, (Shape{5, 16}));
  EXPECT_EQ(t.at("model.layers.0.self_attn.forget_gate_up.weight").shape, (Shape{16, 5}));
  EXPECT_EQ(t.at("model.layers.0.self_attn.forget_gate_up.bias").shape, (Shape{16}));
  EXPECT_GE(t.find("model.layers.0.self_attn.g_proj.weight"), 0);  // the swish output gate
  EXPECT_EQ(t.find("model.layers.1.self_attn.forget_gate_down.weight"), -1);  // softmax layer
  LinearLlama model(m, 1, 4);
  model.init_weights(1);
  const float* bias = model.params().at(t.view(t.find("model.layers.0.self_attn.forget_gate_up.bias")));
  for (int i = 0; i < 16; ++i) EXPECT_EQ(bias[i], 0.0f);  // gates start at sigmoid(0)^(1/tau)
}

TEST(Model, ForwardIsDeterministic) {
  ModelConfig m = tiny_model("lightning", "LS");
  LinearLlama a(m, 2, 7), b(m, 2, 7);
  a.init_weights(5);
  b.init_weights(5);
  Rng rng(1);
  const Data d = make_random_data(2, 7, m.vocab_size, rng);
  EXPECT_EQ(loss_at(a, d), loss_at(b, d));
  a.grads().zero();
  b.grads().zero();
  a.forward_backward(d.tokens.data(), d.targets.data(), 0.1f);
  b.forward_backward(d.tokens.data(), d.targets.data(), 0.1f);
  for (int64_t i = 0; i < a.grads().numel(); ++i) ASSERT_EQ(a.grads().data()[i], b.grads().data()[i]);
}

TEST(Model, Bf16ComputeTracksFp32) {
  ModelConfig m = tiny_model("lightning", "LS");
  m.initializer_range = 0.1;
  LinearLlama f32(m, 2, 7), b16(m, 2, 7, /*bf16_compute=*/true);
  f32.init_weights(3);
  b16.init_weights(3);
  Rng rng(4);
  const Data d = make_random_data(2, 7, m.vocab_size, rng);
  const double lf = loss_at(f32, d), lb = loss_at(b16, d);
  // bf16 keeps 8 mantissa bits (relative rounding 2^-9 ~ 2e-3 per operand);
  // through a few layers the loss moves by well under 1%, but it does move.
  EXPECT_NEAR(lb, lf, 1e-2 * lf);
  EXPECT_NE(lb, lf);
  f32.grads().zero();
  b16.grads().zero();
  f32.forward_backward(d.tokens.data(), d.targets.data(), 0.1f);
  b16.forward_backward(d.tokens.data(), d.targets.data(), 0.1f);
  double dot = 0, nf = 0, nb = 0;
  for (int64_t i = 0; i < f32.grads().numel(); ++i) {
    const double a = f32.grads().data()[i], b = b16.grads().data()[i];
    dot += a * b, nf += a * a, nb += b * b;
  }
  EXPECT_GT(dot / std::sqrt(nf * nb), 0.999);  // gradient direction preserved
  // Master weights stay f32: identical to the f32 model's after the passes.
  for (int64_t i = 0; i < f32.params().numel(); ++i) ASSERT_EQ(f32.params().data()[i], b16.params().data()[i]);
}
