// Linear-attention layer core: config resolution, feature maps, the kernel,
// per-head output norm and output gate, forward and backward side by side.
#include "layers/linear_attention.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "parallel/gated_lasp2.h"
#include "parallel/lasp2.h"
#include "runtime/buffer_plan.h"
#include "runtime/device.h"
#include "runtime/error.h"
#include "runtime/ops.h"
#include "runtime/ops_gla.h"

namespace lintrain {

namespace {

[[noreturn]] void bad_key(const std::string& key, const std::string& value, const std::string& valid) {
  throw ConfigError(str_cat("model.linear_attention.", key, ": '", value, "' is not valid; use ",
                            valid));
}

FeatureMap parse_feature_map(const std::string& s) {
  if (s == "identity") return FeatureMap::identity;
  if (s == "elu1") return FeatureMap::elu1;
  if (s == "silu") return FeatureMap::silu;
  if (s == "relu") return FeatureMap::relu;
  bad_key("feature_map", s, "identity | elu1 | silu | relu (or empty for the variant default)");
}

// -1 = the variant default, 0 = off, 1 = on.
bool resolve_switch(const char* key, int value, bool default_on) {
  if (value == -1) return default_on;
  if (value == 0 || value == 1) return value == 1;
  bad_key(key, std::to_string(value), "0 (off), 1 (on) or -1 (variant default)");
}

// ALiBi head slopes 2^(-8(h+1)/H), with ALiBi's interleaving when H is not a
// power of two (the first P = 2^floor(log2 H) heads take the P-head slopes, the
// rest every other slope of the 2P-head list) exactly as the TNL code does.
double alibi_slope(int h, int H) {
  int P = 1;
  while (P * 2 <= H) P *= 2;
  if (h < P) return std::exp2(-8.0 * (h + 1) / P);
  return std::exp2(-8.0 * (2 * (h - P) + 1) / (2.0 * P));
}

}  // namespace

const char* feature_map_name(FeatureMap f) {
  switch (f) {
    case FeatureMap::identity: return "identity";
    case FeatureMap::elu1: return "elu1";
    case FeatureMap::silu: return "silu";
    case FeatureMap::relu: return "relu";
  }
  return "?";
}

double tnl_decay(int h, int H, int l, int L) {
  const double r = L > 1 ? 1.0 - static_cast<double>(l) / (L - 1) + 1e-5 : 1.0 + 1e-5;
  return std::exp(-alibi_slope(h, H) * r);
}

LinearAttentionSpec make_linear_attention_spec(const ModelConfig& m, int layer_index) {
  const LinearAttentionConfig& c = m.linear_attention;
  LinearAttentionSpec s;
  s.H = m.num_attention_heads;
  s.KVH = m.kv_heads();
  if (s.H < 1 || m.hidden_size % s.H != 0)
    throw ConfigError(str_cat("model.num_attention_heads: ", s.H, " must be >= 1 and divide ",
                              "model.hidden_size=", m.hidden_size));
  if (s.KVH < 1 || s.H % s.KVH != 0)
    throw ConfigError(str_cat("model.num_key_value_heads: ", s.KVH, " must divide ",
                              "model.num_attention_heads=", s.H, " (0 = no grouped-query attention)"));
  s.d = m.head_dim();
  LT_CHECK(layer_index >= 0 && layer_index < m.num_hidden_layers, "[make_linear_attention_spec] ",
           "layer_index ", layer_index, " outside [0, ", m.num_hidden_layers, ")");
  if (c.block_size < 1)
    bad_key("block_size", std::to_string(c.block_size), "an integer >= 1 (64 is typical)");
  s.block = c.block_size;
  if (!(m.rms_norm_eps > 0.0))
    throw ConfigError(str_cat("model.rms_norm_eps: ", m.rms_norm_eps, " must be > 0"));
  s.eps = static_cast<float>(m.rms_norm_eps);

  // Variant defaults; output_norm is on for all three.
  std::string decay, feature;
  bool gate = false;
  if (c.variant == "basic") {
    decay = "none";
    feature = "elu1";
  } else if (c.variant == "lightning") {
    decay = "tnl";
    feature = "silu";
    gate = true;
  } else if (c.variant == "retnet") {
    decay = "retnet";
    feature = "identity";
    gate = true;
    s.key_scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(s.d)));
  } else if (c.variant == "gla") {
    decay = "none";
    feature = "identity";
    gate = true;
    s.key_scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(s.d)));
    s.gated = true;
    if (c.gate_rank < 1) bad_key("gate_rank", std::to_string(c.gate_rank), "an integer >= 1 (16 in the GLA paper)");
    if (!(c.gate_tau > 0.0) || !std::isfinite(c.gate_tau))
      bad_key("gate_tau", std::to_string(c.gate_tau), "a number > 0 (16 in the GLA paper)");
    s.gate_rank = c.gate_rank;
    s.gate_tau = static_cast<float>(c.gate_tau);
    if (!c.decay.empty() && c.decay != "none")
      bad_key("decay", c.decay, "none or \"\" with variant gla (it forgets through its data-dependent gate)");
  } else {
    bad_key("variant", c.variant, "basic | lightning | retnet | gla");
  }
  if (!c.feature_map.empty()) feature = c.feature_map;
  if (!c.decay.empty()) decay = c.decay;
  s.feature_map = parse_feature_map(feature);
  s.output_norm = resolve_switch("output_norm", c.output_norm, true);
  s.output_gate = resolve_switch("output_gate", c.output_gate, gate);

  s.decay.resize(static_cast<size_t>(s.H));
  for (int h = 0; h < s.H; ++h) {
    double lambda;
    if (decay == "none") {
      lambda = 1.0;
    } else if (decay == "tnl") {
      lambda = tnl_decay(h, s.H, layer_index, m.num_hidden_layers);
    } else if (decay == "retnet") {
      lambda = 1.0 - std::exp2(-5.0 - h);
    } else {
      char* end = nullptr;
      lambda = std::strtod(decay.c_str(), &end);
      if (end == decay.c_str() || *end != '\0' || !std::isfinite(lambda) || lambda <= 0.0 ||
          lambda > 1.0)
        bad_key("decay", decay, "none | tnl | retnet | a number in (0, 1]");
    }
    s.decay[static_cast<size_t>(h)] = static_cast<float>(lambda);
  }
  return s;
}

LinearAttentionCore::LinearAttentionCore(const Context& ctx, const LinearAttentionSpec& spec, int B,
                                         int T, Communicator* sp)
    : ctx_(ctx), spec_(spec), B_(B), T_(T) {
  LT_CHECK(B >= 0 && T >= 0, "[LinearAttentionCore] B=", B, " T=", T, " must be >= 0");
  LT_CHECK(spec.H >= 1 && spec.KVH >= 1 && spec.H % spec.KVH == 0 && spec.d >= 1,
           "[LinearAttentionCore] bad heads H=", spec.H, " KVH=", spec.KVH, " d=", spec.d);
  LT_CHECK(spec.block >= 1, "[LinearAttentionCore] block=", spec.block, " must be >= 1");
  // A block longer than the chunk is one partial block of T tokens: the same
  // numbers, without the kernels' block x block scratch of a block never filled.
  block_ = std::max(1, std::min(spec.block, T));
  LT_CHECK(spec.decay.size() == static_cast<size_t>(spec.H), "[LinearAttentionCore] ",
           spec.decay.size(), " decays for H=", spec.H, " heads");
  for (float l : spec.decay)
    LT_CHECK(l > 0.0f && l <= 1.0f, "[LinearAttentionCore] decay ", l, " outside (0, 1]");
  const size_t N = static_cast<size_t>(B) * T, Hd = static_cast<size_t>(spec.H) * spec.d;
  const size_t QK = static_cast<size_t>(spec.H + spec.KVH) * spec.d;
  BufferPlan plan;
  const size_t pre = spec.feature_map == FeatureMap::silu ? N * QK : 0;
  const size_t rstd = spec.output_norm ? N * spec.H : 0, gate = spec.output_gate ? N * Hd : 0;
  plan.add(&feat_, N * qkv_width());
  plan.add(&pre_, pre);
  plan.add(&y_, N * Hd);
  plan.add(&rstd_, rstd);
  plan.add(&g_, gate);
  plan.add(&dy_, N * Hd);
  saved_floats_ = N * qkv_width() + pre + N * Hd + rstd + gate;
  workspace_floats_ = N * Hd;
  if (spec.gated) {
    plan.add(&lg_, N * Hd);
    saved_floats_ += N * Hd;
  }
  if (sp != nullptr && sp->size() > 1) {
    size_t state = 0;
    if (spec.gated) {
      gated_sp_ = std::make_unique<GatedLasp2Exchange>(ctx, sp, B, spec.H, spec.d);
      state = gated_sp_->state_floats();
      plan.add(&sout_, state);
      saved_floats_ += state;
    } else {
      sp_ = std::make_unique<Lasp2StateExchange>(ctx, sp, B, spec.H, spec.d, T, spec.decay);
      state = sp_->state_floats();
    }
    plan.add(&prefix_, state);
    plan.add(&suffix_, state);
    saved_floats_ += state;
    workspace_floats_ += state;
  }
  buffers_ = plan.allocate(ctx_.device);
  decay_ = Tensor::zeros({spec.H}, DType::F32, ctx_.device);
  copy_from_host(ctx_.device, decay_.raw(), spec.decay.data(), spec.decay.size() * sizeof(float));
  ctx_.arena("LinearAttentionCore").reserve(scratch_bytes());
}

LinearAttentionDims LinearAttentionCore::dims() const {
  const int W = qkv_width(), Hd = spec_.H * spec_.d;
  LinearAttentionDims m{B_, T_, spec_.H, spec_.KVH, spec_.d, block_, W, W, W, Hd};
  m.ldg = Hd;  // lg_ is dense
  return m;
}

size_t LinearAttentionCore::scratch_bytes() const {
  const LinearAttentionDims m = dims();
  const Device dev = ctx_.device;
  if (spec_.gated)
    return std::max({gla_forward_scratch_bytes(dev, m), gla_backward_scratch_bytes(dev, m),
                     gated_sp_ ? gla_terms_scratch_bytes(dev, m) : size_t{0}});
  size_t bytes = std::max(linear_attention_forward_scratch_bytes(dev, m),
                          linear_attention_backward_scratch_bytes(dev, m));
  if (sp_) bytes = std::max({bytes, lasp2_terms_scratch_bytes(dev, m), sp_->merge_scratch_bytes()});
  return bytes;
}

LinearAttentionCore::~LinearAttentionCore() = default;

LinearAttentionLayout LinearAttentionCore::layout() const {
  const LinearAttentionSpec& s = spec_;
  LinearAttentionLayout l;
  l.N = static_cast<int64_t>(B_) * T_;
  l.W = qkv_width();
  l.QK = (s.H + s.KVH) * s.d;
  l.Hd = s.H * s.d;
  l.H = s.H;
  l.d = s.d;
  l.feature_map = s.feature_map;
  l.key_scale = s.key_scale;
  l.eps = s.eps;
  return l;
}

int LinearAttentionCore::sp_size() const { return sp_ ? sp_->size() : gated_sp_ ? gated_sp_->size() : 1; }
int LinearAttentionCore::sp_rank() const { return sp_ ? sp_->rank() : gated_sp_ ? gated_sp_->rank() : 0; }

size_t LinearAttentionCore::saved_bytes() const {
  return saved_floats_ * sizeof(float) + decay_.nbytes() + state_in_.nbytes();
}

size_t LinearAttentionCore::workspace_bytes() const {
  return workspace_floats_ * sizeof(float) + (sp_ ? sp_->buffer_bytes() : 0) +
         (gated_sp_ ? gated_sp_->buffer_bytes() : 0);
}

void LinearAttentionCore::forward(float* out, const float* qkv, const float* g,
                                  const float* state_in, float* state_out, const float* log_gate) {
  const LinearAttentionSpec& s = spec_;
  const int Hd = s.H * s.d, QK = (s.H + s.KVH) * s.d;
  LT_CHECK(!s.output_gate || g != nullptr,
           "[LinearAttentionCore::forward] output_gate is on but g is null");
  LT_CHECK(s.gated == (log_gate != nullptr), "[LinearAttentionCore::forward] ",
           s.gated ? "variant gla needs the log forget gates (log_gate is null)"
                   : "log_gate given to a layer without a data-dependent gate");
  LT_CHECK(!sp_ || (state_in == nullptr && state_out == nullptr),
           "[LinearAttentionCore::forward] state_in/state_out must be null under sequence ",
           "parallelism (SP size ", sp_size(), ") with variant ", s.gated ? "gla" : "of a fixed decay",
           ": the chunk boundary states are exchanged by LASP-2 (variant gla takes them)");

  // Features (the kernel's inputs), keeping raw q|k where phi' needs them.
  const LinearAttentionLayout lay = layout();
  linear_attention_features_forward(ctx_, feat_, pre_, qkv, lay);
  has_state_in_ = state_in != nullptr;
  if (state_in) {
    if (!state_in_.defined())  // once; then reused
      state_in_ = Tensor::zeros({B_, s.H, s.d, s.d}, DType::F32, ctx_.device);
    copy_floats(ctx_, state_in_.data<float>(), state_in, state_in_.numel());
  }

  const LinearAttentionDims dims = this->dims();
  const float *fq = feat_, *fk = fq + Hd, *fv = fq + QK;
  const float* decay = decay_.data<float>();
  if (s.gated) {
    copy_floats(ctx_, lg_, log_gate, static_cast<int64_t>(B_) * T_ * Hd);
    if (gated_sp_) {  // [M_j | ld_j] travels while the chunk's own attention runs
      gla_chunk_state(ctx_, gated_sp_->local_map(), gated_sp_->local_log_decay(), fk, fv, lg_, dims);
      gated_sp_->begin_forward();
      gla_forward(ctx_, y_, fq, fk, fv, lg_, nullptr, nullptr, dims);
      // Every rank folds the initial state (the same on all) into its prefix
      // and, when wanted, composes the state leaving the whole sequence.
      gated_sp_->end_forward(prefix_, sout_, state_in, state_out);
      gla_add_prefix_output(ctx_, y_, fq, lg_, prefix_, dims);
    } else {
      gla_forward(ctx_, y_, fq, fk, fv, lg_, state_in, state_out, dims);
    }
  } else {
    if (sp_) lasp2_chunk_state(ctx_, sp_->local_state(), fk, fv, decay, dims);
    if (sp_) sp_->begin_forward();  // M_j travels while the chunk's own attention runs
    linear_attention_forward(ctx_, y_, fq, fk, fv, decay, state_in, state_out, dims);
    if (sp_) {
      sp_->end_forward(prefix_);
      lasp2_add_prefix_output(ctx_, y_, fq, prefix_, decay, dims);
    }
  }

  linear_attention_output_forward(ctx_, out, y_, rstd_,
                                  g_, s.output_gate ? g : nullptr, lay);
  forward_done_ = true;
}

void LinearAttentionCore::backward(float* dqkv, float* dg, const float* dout,
                                   const float* dstate_out, float* dstate_in, float* dlog_gate) {
  const LinearAttentionSpec& s = spec_;
  const int Hd = s.H * s.d, QK = (s.H + s.KVH) * s.d;
  LT_CHECK(forward_done_, "[LinearAttentionCore::backward] called before forward");
  LT_CHECK(!s.output_gate || dg != nullptr,
           "[LinearAttentionCore::backward] output_gate is on but dg is null");
  LT_CHECK(!s.gated || dlog_gate != nullptr, "[LinearAttentionCore::backward] variant gla needs dlog_gate");
  LT_CHECK(!sp_ || (dstate_out == nullptr && dstate_in == nullptr),
           "[LinearAttentionCore::backward] dstate_out/dstate_in must be null under sequence ",
           "parallelism (SP size ", sp_size(), ")");

  // Through the gate and the norm to dL/d(kernel output) in dy_.
  const LinearAttentionLayout lay = layout();
  linear_attention_output_backward(ctx_, dy_, s.output_gate ? dg : nullptr, dout, y_,
                                   rstd_, g_, lay);

  const LinearAttentionDims dims = this->dims();
  const float *fq = feat_, *fk = fq + Hd, *fv = fq + QK;
  const float* decay = decay_.data<float>();
  float *dq = dqkv, *dk = dqkv + Hd, *dv = dqkv + QK;
  const float* saved_state_in = has_state_in_ ? state_in_.data<float>() : nullptr;
  if (s.gated) {
    if (gated_sp_) {  // dP_j travels while the chunk's own backward (from P_j) runs
      gla_prefix_state_grad(ctx_, gated_sp_->local_grad(), fq, lg_, dy_, dims);
      gated_sp_->begin_backward();
      gla_backward(ctx_, dq, dk, dv, dlog_gate, nullptr, dy_, nullptr, fq, fk, fv, lg_, prefix_, dims);
      // dstate_out (the same on every rank) enters the suffix fold at the
      // sequence's end; dstate_in is the fold carried past chunk 0.
      gated_sp_->end_backward(suffix_, dstate_out, dstate_in);
      gla_add_suffix_grads(ctx_, dk, dv, dlog_gate, fk, fv, lg_, suffix_, sout_, dims);
    } else {
      gla_backward(ctx_, dq, dk, dv, dlog_gate, dstate_in, dy_, dstate_out, fq, fk, fv, lg_, saved_state_in, dims);
    }
  } else {
    if (sp_) lasp2_prefix_state_grad(ctx_, sp_->local_state(), fq, dy_, decay, dims);
    if (sp_) sp_->begin_backward();  // dP_j travels while the intra-chunk backward runs
    linear_attention_backward(ctx_, dq, dk, dv, dstate_in, dy_, dstate_out, fq, fk, fv,
                              decay, saved_state_in, dims);
    if (sp_) {
      lasp2_add_prefix_dq(ctx_, dq, dy_, prefix_, decay, dims);
      sp_->end_backward(suffix_);
      lasp2_add_suffix_dkdv(ctx_, dk, dv, fk, fv, suffix_, decay, dims);
    }
  }

  // Through key_scale and the feature map, in place on the q|k columns.
  linear_attention_features_backward(ctx_, dqkv, feat_, pre_, lay);
}

}  // namespace lintrain
