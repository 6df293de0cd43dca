// The FP8 GEMMs of one linear layer (issue 14, precision.fp8): out = inp @
// weight^T and its two backward GEMMs, each operand quantised to FP8 and read
// back (runtime/fp8_gemm.h), then multiplied by the FP32 matmul op. Master
// weights, gradients and the accumulation stay FP32.
//
// Roles and formats: the weight and the activation (inp) use the forward
// format (E4M3), the output gradient (dout) the backward format (E5M2 with
// format hybrid, E4M3 with e4m3).
//
// Each tensor is quantised once, in its stored layout, and the GEMMs read it
// through the matmul op's transpose flags:
//   forward  out  (N, OC)  = q(inp) (N, C)   @ q(W)^T (C, OC)     K = C
//   dgrad    dinp (N, C)   = q(dout) (N, OC) @ q(W)   (OC, C)     K = OC
//   wgrad    dW   (OC, C) += q(dout)^T       @ q(inp) (N, C)      K = N
// The backward reads the same q(inp) and q(W) the forward used (re-quantised
// with the forward's scales: the same bits, no FP8 copy kept).
//
// Recipes (runtime/fp8_scaling.h):
//   delayed   one DelayedScaling per role. The step quantises with the scales
//             the previous steps chose; record() takes this step's amaxes
//             (every micro-batch); end_step() takes the max of slot 0 over
//             the ranks that hold this weight and rolls, so every rank keeps
//             the same history and scales (they are checkpoint entries).
//   current   per-tensor scale from the tensor's amax. The activation and
//             gradient amaxes are reduced (max) over the ranks first (one
//             small collective per tensor, the AmaxReduce the owner passes),
//             so an SP or DP split quantises exactly as one rank does; the
//             weight is the same on every rank and needs none.
//   blockwise power-of-two scale per tile: 128 x 128 blocks of W, 1 x 128
//             tiles of inp and dout along their channels (each token's row).
//             A tile never spans two tokens, so no tiling depends on how the
//             tokens are split over ranks: SP=N quantises exactly as SP=1.
//             In the forward and dgrad GEMMs the tiles run along K, as in
//             DeepSeek-V3; in the wgrad GEMM (K = tokens) they run across K,
//             which the emulation computes exactly but a native kernel would
//             tile as 128 x 1 (it would then depend on the split unless each
//             rank's token count is a multiple of 128).
//
// Counts (saturated, flushed) accumulate into the caller's three Fp8Counts
// per class (weights, activations, gradients), once per quantisation a
// training step does (the backward's re-quantisations are not counted again).
#pragma once

#include <functional>
#include <string>

#include "runtime/context.h"
#include "runtime/fp8_scaling.h"
#include "runtime/ops.h"

namespace lintrain {

class RunState;

// precision.fp8, parsed.
struct Fp8Settings {
  Fp8Recipe recipe = Fp8Recipe::Delayed;
  Fp8Formats formats;
  DelayedScalingOptions delayed;  // amax_history_len, amax_compute, margin (margin is every recipe's)
};

// The classes of FP8 tensors the counters report.
enum class Fp8Class { Weights = 0, Activations = 1, Gradients = 2 };
constexpr int kFp8Classes = 3;

// Max over the ranks that hold the same weight (DP x SP), in place, of n
// host floats; every rank must call it at the same point. Null = one rank.
using AmaxReduce = std::function<void(float* amax, int n)>;

class Fp8Linear {
 public:
  // name: the state's checkpoint prefix (the first weight tensor of the GEMM).
  Fp8Linear(std::string name, const Fp8Settings& settings);

  const std::string& name() const { return name_; }

  // out (N, OC) = inp (N, C) @ weight (OC, C)^T, or += with accumulate.
  // training: record amaxes (delayed) and count into counts[kFp8Classes]
  // (on ctx.device; null = not counted). Needs scratch_bytes(N, C, OC).
  void forward(const Context& ctx, float* out, const float* inp, const float* weight, int N, int C, int OC,
               bool accumulate, bool training, Fp8Counts* counts, const AmaxReduce& reduce);

  // dinp (N, C) = dout (N, OC) @ weight (OC, C) (+= with accumulate_dinp;
  // skipped when null), dweight (OC, C) += dout^T @ inp. Must follow this
  // layer's forward of the same inp and weight.
  void backward(const Context& ctx, float* dinp, float* dweight, const float* dout, const float* inp,
                const float* weight, int N, int C, int OC, bool accumulate_dinp, Fp8Counts* counts,
                const AmaxReduce& reduce);

  static size_t scratch_bytes(Device device, const Fp8Settings& settings, int N, int C, int OC);

  // Delayed recipe: how many amaxes end_step exchanges (3: weight,
  // activation, gradient), and the exchange in two halves so that a model
  // reduces all its layers' amaxes in one collective: write this step's
  // local slot 0 values into out[0..3), then take the reduced ones and roll.
  // Other recipes: 0 values, nothing to do.
  int amax_count() const;
  void local_amaxes(float* out) const;
  void end_step(const float* reduced);

  // Delayed recipe: the three roles' states as
  // `<prefix><name>.{weight,input,grad}.fp8_*` entries of `part`
  // (runtime/fp8_scaling.h add_to). Other recipes: none.
  void add_to(RunState& state, const std::string& part, const std::string& prefix);

 private:
  // deq = dequant(quant(x)) of one operand (rows, cols), per the recipe.
  // scale: the per-tensor scale to use (delayed, or current after it is
  // chosen); returns it.
  void quantise(const Context& ctx, float* deq, const float* x, int rows, int cols, Fp8Format format,
                bool weight_tiles, float scale, Fp8Counts* counts);
  float current_scale(const Context& ctx, const float* x, int64_t n, Fp8Format format, bool reduced,
                      const AmaxReduce& reduce);

  std::string name_;
  Fp8Settings settings_;
  DelayedScaling weight_, input_, grad_;  // used by the delayed recipe only
  // This step's local amaxes (weight, input, grad) until end_step: kept out
  // of the DelayedScaling state, which a checkpoint copies beside the next
  // step's forward and backward and must not change during them.
  float step_amax_[3] = {0.0f, 0.0f, 0.0f};
  void note_amax(int role, const Fp8Amax& amax);
  float w_scale_ = 1.0f, x_scale_ = 1.0f; // the forward's per-tensor scales, for the backward
};

}  // namespace lintrain
