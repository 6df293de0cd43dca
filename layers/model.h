// Linear-Llama: a Llama-3 stack (pre-norm RMSNorm, SwiGLU MLP, untied or tied
// output head) whose attention in layer i is linear ('L') or softmax ('S')
// according to model.layer_pattern, repeated over the layers.
//
// All parameters live in one flat buffer laid out by a ParamTable with the
// Hugging Face Llama names; gradients in a second buffer of the same layout.
// Forward and backward are written out per layer (no autograd); every layer
// keeps the activations its backward needs for one micro-batch of shape (B, T).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "layers/cross_entropy.h"
#include "layers/fp8_linear.h"
#include "runtime/config/config.h"
#include "runtime/context.h"
#include "runtime/param_table.h"

namespace lintrain {

class Communicator;
class RunState;
class LinearAttentionCore;
class SoftmaxAttentionCore;

// The parameter layout of a model config (no activations): names, shapes,
// offsets. Used by the model, exporters and the memory reports.
ParamTable make_param_table(const ModelConfig& cfg);

// precision.fp8 for the model (LinearLlama::enable_fp8).
struct Fp8ModelOptions {
  Fp8Settings settings;
  // Whether a block linear tensor (its Hugging Face name) runs in FP8
  // (precision.fp8.include / exclude). A fused GEMM (q|k|v, gate|up) is one
  // FP8 GEMM: it runs in FP8 when all its tensors are selected, and a fused
  // GEMM whose tensors disagree is refused (ConfigError naming them).
  std::function<bool(const std::string& tensor)> selected;
  // Max over every rank that holds the same weights (DP x SP); null = one rank.
  AmaxReduce reduce;
};

// Per FP8 tensor class (weights, activations, gradients): what quantisation
// lost in the training steps since the last read (saturated, flushed to zero).
struct Fp8StepCounts {
  Fp8Counts by_class[kFp8Classes];
  int64_t quantised[kFp8Classes] = {0, 0, 0};  // values quantised, the fractions' denominators
};

class LinearLlama {
 public:
  // B sequences of T tokens per micro-batch. With a sequence-parallel group
  // `sp` of W ranks, T is this rank's chunk (the sequence is W * T long and SP
  // rank j holds tokens j*T .. j*T+T-1): linear layers exchange memory states
  // (LASP-2), softmax layers gather keys/values (LASP-2H). `sp` (not owned)
  // must outlive the model; null = one rank.
  // bf16_compute: every GEMM operand (weights and the activations fed to
  // projections and the head) is rounded to bf16 while accumulation, the
  // residual stream, norm statistics, attention states, master weights and
  // gradients stay f32: the numerics of bf16 tensor-core training.
  // device: where the parameters, gradients, activations and every op live
  // (CUDA: the current GPU of this thread; `sp` must then carry device
  // buffers too).
  LinearLlama(const ModelConfig& cfg, int B, int T, bool bf16_compute = false,
              Communicator* sp = nullptr, Device device = Device::CPU);
  ~LinearLlama();
  LinearLlama(const LinearLlama&) = delete;
  LinearLlama& operator=(const LinearLlama&) = delete;

  const ModelConfig& config() const { return cfg_; }
  const ParamTable& table() const { return table_; }
  FlatBuffer& params() { return params_; }
  const FlatBuffer& params() const { return params_; }
  FlatBuffer& grads() { return grads_; }
  // Where the model's ops run, with its scratch arena (which also holds the
  // gradient norm's scratch over grads()): the optimizer and the gradient
  // norm run on it too. Lives as long as the model. params() and grads()
  // live on context().device.
  const Context& context() const { return ctx_; }
  int batch() const { return B_; }
  int seq_len() const { return T_; }

  // Normal(0, initializer_range) for matrices and the embedding, with o_proj
  // and down_proj scaled by 1/sqrt(2 * layers) (residual branches), ones for
  // norms. Deterministic from the seed.
  void init_weights(uint64_t seed);

  // tokens, targets (B, T); target -1 = not counted. Runs forward and backward
  // and adds grad_scale * d(sum of token losses)/d(params) into grads().
  CrossEntropyStats forward_backward(const int32_t* tokens, const int32_t* targets, float grad_scale);
  // Forward only (evaluation).
  CrossEntropyStats forward_loss(const int32_t* tokens, const int32_t* targets);

  // FP8 GEMMs for the block linears options.selected picks (before the first
  // step; reserves their scratch). The embedding, the head, norms and the
  // attention cores stay in the model's compute precision.
  void enable_fp8(const Fp8ModelOptions& options);
  bool fp8_enabled() const { return !fp8_.empty(); }
  // The names of the FP8 GEMMs (their first tensor), in layer order.
  std::vector<std::string> fp8_gemms() const;
  // After each optimizer step, on every rank: the delayed recipe's amaxes
  // reduced over the ranks (one collective for all layers) and rolled.
  void fp8_end_step();
  // The counts since the last call, read back from the device and reset
  // (this rank's; the caller sums over ranks).
  Fp8StepCounts take_fp8_counts();
  // The delayed recipe's scales and amax histories as entries of `part`
  // ("fp8/<tensor>.{weight,input,grad}.fp8_*"); nothing for other recipes.
  void add_fp8_state(RunState& state, const std::string& part);

  // Bytes of activations kept for backward (all layers, one micro-batch).
  size_t activation_bytes() const;

  // Called during forward_backward with the ParamTable indices of the tensors
  // whose gradients have just become final (last layer first), so their
  // all-reduce can start while earlier layers run backward. Null = no hook.
  using GradsReadyHook = std::function<void(const std::vector<int>& views)>;
  void set_grads_ready_hook(GradsReadyHook hook) { grads_ready_ = std::move(hook); }

 private:
  struct Block;
  void forward(const int32_t* tokens);
  int layer_param(int layer, const char* suffix) const;
  // out (N, OC) (+)= inp @ W^T and its backward: through the block's FP8
  // GEMM `f` when it has one, else the model's GEMM precision.
  void block_linear_forward(Fp8Linear* f, float* out, const float* inp, int w, int N, int C, int OC,
                            bool accumulate);
  void block_linear_backward(Fp8Linear* f, float* dinp, int w, const float* dout, const float* inp, int N, int C,
                             int OC, bool accumulate_dinp = false);

  // The weights the ops read: params_ itself, or under bf16 compute its bf16
  // rounding for the 2-D (GEMM) weights; 1-D tensors (norm gains) stay f32.
  const float* weight(int idx) const;
  void prepare_compute_weights();

  // d(loss)/d(residual stream) as a GEMM operand: dx_, or its bf16 rounding.
  const float* residual_grad_operand();

  ModelConfig cfg_;
  int B_, T_;
  bool bf16_;
  Arena scratch_;  // the ops' temporaries, reserved at construction
  Context ctx_;    // where the model's ops run
  ParamTable table_;
  FlatBuffer params_, grads_;
  FlatBuffer compute_params_;  // bf16-rounded copy (bf16 compute only)
  // Every activation and backward workspace of the model (not of the
  // attention cores) lives in this one block on ctx_.device, cut up at
  // construction: nothing is allocated per step.
  Tensor activations_;
  std::vector<std::unique_ptr<Block>> blocks_;
  Tensor tokens_, targets_;  // (B*T) int32 on the device: this step's ids
  float *x_final_ = nullptr, *h_final_ = nullptr, *rstd_final_ = nullptr, *dh_final_ = nullptr, *dx_ = nullptr;
  // Backward scratch shared by every layer: d_act (N, F), d_gu (N, 2F),
  // d_h (N, C), d_attn and d_g (N, HD), d_qkv (N, QKV).
  float *d_act_ = nullptr, *d_gu_ = nullptr, *d_h_ = nullptr, *d_attn_ = nullptr, *d_g_ = nullptr,
        *d_qkv_ = nullptr, *d_res_ = nullptr;
  float *d_lg_ = nullptr, *d_fz_ = nullptr;  // gla only: d(log forget gates) (N, HD), d(x W_down^T) (N, R)
  GemmPrecision gemm_;  // bf16 operands with bf16 compute, else fp32
  ChunkedCrossEntropy head_;
  GradsReadyHook grads_ready_;
  // FP8 (enable_fp8): one Fp8Linear per FP8 GEMM, owned here, pointed to by the blocks.
  std::vector<std::unique_ptr<Fp8Linear>> fp8_;
  Fp8ModelOptions fp8_options_;
  Tensor fp8_counts_;  // (kFp8Classes * 3) i64 on the device: Fp8Counts per class
  int64_t fp8_quantised_[kFp8Classes] = {0, 0, 0};
  bool training_ = false;  // forward() records amaxes and counts (not in evaluation)
};

}  // namespace lintrain
