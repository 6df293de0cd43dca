// The linear-attention core of a model layer: everything between the fused
// q|k|v projection and o_proj (the projections themselves belong to the model).
//
//   q, k  <- phi(q), key_scale * phi(k)          feature map on q and k
//   o     <- causal linear attention with per-head decays (linear_attention_forward, runtime/ops.h)
//   o     <- o / sqrt(mean_d(o^2) + eps)          per head, parameter-free (output_norm)
//   out   <- o * silu(g)                          output gate (output_gate), g = x W_g^T
//
// Variants (model.linear_attention.variant) and their defaults; every field
// except the variant can be overridden in the config ("" / -1 = default):
//   basic      decay none, feature elu1 (elu(x)+1), output_norm on, gate off
//   lightning  decay tnl,  feature silu,            output_norm on, gate on  (TransNormerLLM)
//   retnet     decay retnet, feature identity, k scaled by 1/sqrt(d), norm on, gate on
//   gla        no fixed decay: a data-dependent forget gate per token, query head
//              and key dimension (runtime/ops_gla.h), feature identity, k scaled
//              by 1/sqrt(d), norm on, gate on. The gate's log values come from
//              the model (LinearLlama: logsigmoid(x W_down^T W_up^T + b) / tau).
// Decays (model.linear_attention.decay): none (lambda = 1) | tnl | retnet | a number in (0, 1].
//   retnet: lambda_h = 1 - 2^(-5-h), h = 0..H-1 (RetNet's gamma, torchscale).
//   tnl:    lambda_h = exp(-m_h * r_l), the formula of the released TransNormerLLM code
//           (OpenNLPLab modeling_transnormer.py, also MiniMax-01's lightning layers):
//             m_h = 2^(-8(h+1)/H)  (ALiBi slopes; for H not a power of two, the
//                                   ALiBi interleaving of the next power of two),
//             r_l = 1 - l/(L-1) + 1e-5  (L = num_hidden_layers, l = 0-based layer;
//                                        r = 1 + 1e-5 when L = 1).
//   Why not exp(-(8(h+1)/H)(1 - l/L)), the form quoted for the TNL paper (its
//   text was not retrievable from our stored sources; the code was): read
//   literally it gives every head of layer 0 at most exp(-8/H) and its last head
//   exp(-8) ~ 3e-4 (a one-token memory), the opposite ordering to the code,
//   where later heads keep the longest memory (lambda -> 1). "8h/H" is the
//   exponent of ALiBi's 2^(-8h/H) slope; the code is what trained TNL
//   checkpoints use. The formula lives in tnl_decay() only.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "runtime/config/config.h"
#include "runtime/ops.h"  // Context, LinearAttentionDims

namespace lintrain {

class Communicator;
class Lasp2StateExchange;
class GatedLasp2Exchange;

struct LinearAttentionSpec {
  int H = 0, KVH = 0, d = 0;  // query heads, kv heads (H % KVH == 0), head dim
  int block = 64;             // kernel block length
  FeatureMap feature_map = FeatureMap::identity;
  float key_scale = 1.0f;     // k <- key_scale * phi(k) (retnet: 1/sqrt(d))
  std::vector<float> decay;   // (H) lambda_h in (0, 1]
  bool output_norm = true;
  bool output_gate = false;
  float eps = 1e-5f;          // output_norm epsilon (model.rms_norm_eps)
  // gla: the state forgets through log gates given per token (forward's
  // log_gate); decay is then all ones and unused.
  bool gated = false;
  int gate_rank = 16;         // the model's low-rank gate projection width
  float gate_tau = 16.0f;     // its temperature
};

// Resolves the variant defaults and overrides of m.linear_attention for layer
// `layer_index` (0-based, of m.num_hidden_layers; the tnl decay depends on it).
// Throws ConfigError "model.linear_attention.<key>: ..." naming the value and
// the valid choices for a bad variant, feature_map, decay, output_norm,
// output_gate or block_size, and for impossible head counts.
LinearAttentionSpec make_linear_attention_spec(const ModelConfig& m, int layer_index);

// The tnl decay of head h (0-based) of H, in layer l (0-based) of L (see top).
double tnl_decay(int h, int H, int l, int L);

const char* feature_map_name(FeatureMap f);

// One layer's core for a fixed (B, T). Owns the activations saved between
// forward and backward and a backward workspace; call forward, then backward
// (backward may be repeated; a new forward overwrites the saved state).
// N = B*T rows, W = (H + 2 KVH) d:
//   qkv   (N, W)    row = [q (H d) | k (KVH d) | v (KVH d)], pre feature map
//   g     (N, H d)  gate pre-activation; required iff output_gate, else ignored
//   out   (N, H d)
//   state (B, H, d, d) initial / final kernel states (nullptr = zeros / not wanted)
//
// Sequence parallelism (LASP-2, parallel/lasp2.h): pass the SP group as `sp`.
// Rank j = sp->rank() of W = sp->size() then holds chunk j of a sequence of
// W*T tokens (T = this rank's chunk length, equal on every rank; token t of
// batch row b here is global token j*T + t), and forward/backward compute
// exactly what a single-rank core on the whole sequence computes for these
// rows (up to fp32 reassociation):
//   forward:  M_j -> begin AllGather -> intra-chunk kernel (state 0) -> wait
//             -> P_j = decayed prefix of M_0..M_{j-1} -> out += (Lq * Q) P_j
//   backward: dP_j -> begin AllGather -> intra-chunk kernel backward and the
//             P_j term of dQ -> wait -> G_j = decayed suffix of dP_{j+1}.. ->
//             dK, dV += the G_j terms
// One AllGather of B*H*d*d floats per direction, nothing else; every rank of
// the group must call forward and backward together. Feature maps, norm and
// gate are per token and stay local. With sp == nullptr or sp->size() == 1
// the core is the single-rank core (no collectives). Under SP, state_in,
// state_out, dstate_out and dstate_in must be null for the fixed-decay
// variants (the chunk boundaries are the exchange's business). Variant gla
// (parallel/gated_lasp2.h: the same two gathers, of [M_j | ld_j] forward)
// takes them under SP too, meaning the whole sequence's: state_in and
// dstate_out the same on every rank, state_out and dstate_in produced on every
// rank.
class LinearAttentionCore {
 public:
  // ctx: where the kernels run; its arena (not owned, must outlive the core)
  // is reserved here for scratch_bytes(). sp: not owned; must outlive the core.
  LinearAttentionCore(const Context& ctx, const LinearAttentionSpec& spec, int B, int T,
                      Communicator* sp = nullptr);
  ~LinearAttentionCore();
  LinearAttentionCore(const LinearAttentionCore&) = delete;
  LinearAttentionCore& operator=(const LinearAttentionCore&) = delete;

  // log_gate (N, H d): the per-token log forget gates (<= 0), required iff
  // spec.gated (gla), copied (the caller's buffer may change after forward).
  void forward(float* out, const float* qkv, const float* g, const float* state_in,
               float* state_out, const float* log_gate = nullptr);
  // dqkv (N, W) and dg (N, H d) are assigned (=); dg may be null without a gate.
  // dstate_out: dL/d(state_out) or null (zero); dstate_in: dL/d(state_in) or null.
  // dlog_gate (N, H d): dL/d(log_gate), assigned; required iff spec.gated.
  void backward(float* dqkv, float* dg, const float* dout, const float* dstate_out,
                float* dstate_in, float* dlog_gate = nullptr);

  // Bytes kept from forward to backward:
  //   feat  N W            phi(q) | key_scale phi(k) | v  (the kernel's inputs)
  //   pre   N (H+KVH) d    raw q|k, only for silu (its derivative needs x; the
  //                        other maps' derivatives are recovered from feat)
  //   y     N H d          head outputs after the norm, before the gate
  //   rstd  N H            1/rms per head, only with output_norm
  //   g     N H d          copy of the gate pre-activation, only with output_gate
  //   state B H d d        copy of state_in, only if one was given
//   P     B H d d        the LASP-2 prefix state P_j, only under SP (W > 1)
  //   lg    N H d          gla only: the log forget gates
  //   Sout  B H d d        gla under SP only: the state leaving the chunk
  // The kernel itself saves nothing (it rebuilds block states in backward).
  size_t saved_bytes() const;
  // Backward-only scratch (dL/d(kernel output), N H d floats), plus under SP
  // the exchange's buffers ((W + 1) B H d d; gla: (W + 1) B H (2 d d + d))
  // and G_j (B H d d).
  size_t workspace_bytes() const;
  // The most scratch one of its ops takes from ctx's arena (forward or backward).
  size_t scratch_bytes() const;
  // The SP group size W (1 without SP) and this rank's chunk index.
  int sp_size() const;
  int sp_rank() const;

  const LinearAttentionSpec& spec() const { return spec_; }
  int qkv_width() const { return (spec_.H + 2 * spec_.KVH) * spec_.d; }

 private:
  LinearAttentionDims dims() const;

  Context ctx_;
  LinearAttentionSpec spec_;
  int B_, T_;
  int block_;  // spec.block, at most T_
  LinearAttentionLayout layout() const;
  // feat_ .. suffix_ are pieces of buffers_, one block on ctx_.device
  // (sizes: saved_bytes() and workspace_bytes()); null when not needed.
  Tensor buffers_;
  size_t saved_floats_ = 0, workspace_floats_ = 0;
  float *feat_ = nullptr, *pre_ = nullptr, *y_ = nullptr, *rstd_ = nullptr, *g_ = nullptr, *dy_ = nullptr;
  float *prefix_ = nullptr, *suffix_ = nullptr;  // (B, H, d, d) P_j, G_j; only under SP
  float *lg_ = nullptr, *sout_ = nullptr;         // gla: (N, H d) log gates; under SP (B, H, d, d) S_out
  Tensor decay_;     // (H) spec_.decay on ctx_.device: what the kernels read
  Tensor state_in_;  // (B, H, d, d) copy of state_in, made on the first forward given one
  std::unique_ptr<Lasp2StateExchange> sp_;        // null = single rank (or gla)
  std::unique_ptr<GatedLasp2Exchange> gated_sp_;  // gla under SP
  bool has_state_in_ = false;
  bool forward_done_ = false;
};

}  // namespace lintrain
