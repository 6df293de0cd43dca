// The FP8 linear layer (layers/fp8_linear.h): quantise each operand once,
// then the three GEMMs of layers/linear.cpp on the read-back values.
#include "layers/fp8_linear.h"

#include <algorithm>
#include <tuple>

#include "runtime/arena.h"
#include "runtime/checkpoint/run_state.h"
#include "runtime/error.h"
#include "runtime/fp8_gemm.h"

namespace lintrain {

namespace {
constexpr int kTile = 128;  // DeepSeek-V3: 1 x 128 activation/gradient tiles, 128 x 128 weight blocks

Fp8Counts* class_counts(Fp8Counts* counts, Fp8Class c) {
  return counts ? counts + static_cast<int>(c) : nullptr;
}
}  // namespace

Fp8Linear::Fp8Linear(std::string name, const Fp8Settings& settings)
    : name_(std::move(name)), settings_(settings), weight_(settings.formats.forward, settings.delayed),
      input_(settings.formats.forward, settings.delayed), grad_(settings.formats.backward, settings.delayed) {}

void Fp8Linear::quantise(const Context& ctx, float* deq, const float* x, int rows, int cols, Fp8Format format,
                         bool weight_tiles, float scale, Fp8Counts* counts) {
  if (settings_.recipe == Fp8Recipe::Blockwise)
    fp8_fake_quantize_blockwise(ctx, deq, x, rows, cols, weight_tiles ? kTile : 1, kTile, format, counts);
  else
    fp8_fake_quantize(ctx, deq, x, static_cast<int64_t>(rows) * cols, scale, format, counts);
}

float Fp8Linear::current_scale(const Context& ctx, const float* x, int64_t n, Fp8Format format, bool reduced,
                               const AmaxReduce& reduce) {
  Fp8Amax amax = fp8_amax(ctx, x, n);
  if (reduced && reduce) {
    // Whether any rank saw NaN/inf rides along, so every rank's scale (and
    // its events) comes from the same reduced amax.
    float v[2] = {amax.amax, amax.nonfinite > 0 ? 1.0f : 0.0f};
    reduce(v, 2);
    amax.amax = v[0];
    amax.nonfinite = v[1] > 0 ? 1 : 0;
  }
  return fp8_current_scale(amax, format, settings_.delayed.margin);
}

void Fp8Linear::forward(const Context& ctx, float* out, const float* inp, const float* weight, int N, int C, int OC,
                        bool accumulate, bool training, Fp8Counts* counts, const AmaxReduce& reduce) {
  const Fp8Format f = settings_.formats.forward;
  const int64_t nx = static_cast<int64_t>(N) * C, nw = static_cast<int64_t>(OC) * C;
  switch (settings_.recipe) {
    case Fp8Recipe::Delayed:
      w_scale_ = weight_.scale();
      x_scale_ = input_.scale();
      if (training) {
        note_amax(0, fp8_amax(ctx, weight, nw));
        note_amax(1, fp8_amax(ctx, inp, nx));
      }
      break;
    case Fp8Recipe::Current:
      w_scale_ = current_scale(ctx, weight, nw, f, /*reduced=*/false, reduce);  // the same on every rank
      x_scale_ = current_scale(ctx, inp, nx, f, /*reduced=*/true, reduce);
      break;
    case Fp8Recipe::Blockwise:
      break;
  }
  ScratchScope scratch(ctx.arena("fp8_linear_forward"));
  float* x_deq = scratch.take<float>(static_cast<size_t>(nx), "fp8_linear_forward");
  float* w_deq = scratch.take<float>(static_cast<size_t>(nw), "fp8_linear_forward");
  Fp8Counts* cw = training ? class_counts(counts, Fp8Class::Weights) : nullptr;
  Fp8Counts* cx = training ? class_counts(counts, Fp8Class::Activations) : nullptr;
  quantise(ctx, x_deq, inp, N, C, f, /*weight_tiles=*/false, x_scale_, cx);
  quantise(ctx, w_deq, weight, OC, C, f, /*weight_tiles=*/true, w_scale_, cw);
  matmul(ctx, GemmPrecision::fp32, false, true, N, OC, C, 1.0f, x_deq, C, w_deq, C, accumulate ? 1.0f : 0.0f, out,
         OC);
}

void Fp8Linear::backward(const Context& ctx, float* dinp, float* dweight, const float* dout, const float* inp,
                         const float* weight, int N, int C, int OC, bool accumulate_dinp, Fp8Counts* counts,
                         const AmaxReduce& reduce) {
  const Fp8Format f = settings_.formats.forward, b = settings_.formats.backward;
  const int64_t nx = static_cast<int64_t>(N) * C, nw = static_cast<int64_t>(OC) * C;
  const int64_t ng = static_cast<int64_t>(N) * OC;
  float g_scale = 1.0f;
  if (settings_.recipe == Fp8Recipe::Delayed) {
    g_scale = grad_.scale();
    note_amax(2, fp8_amax(ctx, dout, ng));
  } else if (settings_.recipe == Fp8Recipe::Current) {
    g_scale = current_scale(ctx, dout, ng, b, /*reduced=*/true, reduce);
  }
  ScratchScope scratch(ctx.arena("fp8_linear_backward"));
  float* g_deq = scratch.take<float>(static_cast<size_t>(ng), "fp8_linear_backward");
  float* w_deq = scratch.take<float>(static_cast<size_t>(nw), "fp8_linear_backward");
  float* x_deq = scratch.take<float>(static_cast<size_t>(nx), "fp8_linear_backward");
  quantise(ctx, g_deq, dout, N, OC, b, /*weight_tiles=*/false, g_scale, class_counts(counts, Fp8Class::Gradients));
  // The forward's operands again (counted there).
  quantise(ctx, w_deq, weight, OC, C, f, /*weight_tiles=*/true, w_scale_, nullptr);
  quantise(ctx, x_deq, inp, N, C, f, /*weight_tiles=*/false, x_scale_, nullptr);
  if (dinp)
    matmul(ctx, GemmPrecision::fp32, false, false, N, C, OC, 1.0f, g_deq, OC, w_deq, C,
           accumulate_dinp ? 1.0f : 0.0f, dinp, C);
  matmul(ctx, GemmPrecision::fp32, true, false, OC, C, N, 1.0f, g_deq, OC, x_deq, C, 1.0f, dweight, C);
}

size_t Fp8Linear::scratch_bytes(Device device, const Fp8Settings& settings, int N, int C, int OC) {
  const int64_t nx = static_cast<int64_t>(N) * C, nw = static_cast<int64_t>(OC) * C;
  const int64_t ng = static_cast<int64_t>(N) * OC;
  const size_t deq = arena_round(static_cast<size_t>(nx) * sizeof(float)) +
                     arena_round(static_cast<size_t>(nw) * sizeof(float)) +
                     arena_round(static_cast<size_t>(ng) * sizeof(float));
  size_t inner = 0;  // the largest temporary taken (and given back) after the read-back buffers
  for (const auto& [rows, cols, weight_tiles] : {std::tuple<int, int, bool>{N, C, false}, {OC, C, true},
                                                 {N, OC, false}}) {
    const int64_t n = static_cast<int64_t>(rows) * cols;
    inner = std::max(inner, settings.recipe == Fp8Recipe::Blockwise
                                ? fp8_fake_quantize_blockwise_scratch_bytes(rows, cols, weight_tiles ? kTile : 1, kTile)
                                : fp8_fake_quantize_scratch_bytes(n));
    inner = std::max(inner, fp8_amax_scratch_bytes(device, n));  // taken before the read-back buffers; bounded here too
  }
  return deq + inner;
}

int Fp8Linear::amax_count() const { return settings_.recipe == Fp8Recipe::Delayed ? 3 : 0; }

void Fp8Linear::note_amax(int role, const Fp8Amax& amax) {
  if (amax.nonfinite == 0) step_amax_[role] = std::max(step_amax_[role], amax.amax);
}

void Fp8Linear::local_amaxes(float* out) const {
  if (amax_count() == 0) return;
  std::copy(step_amax_, step_amax_ + 3, out);
}

void Fp8Linear::end_step(const float* reduced) {
  if (amax_count() == 0) return;
  weight_.record({reduced[0], 0});
  input_.record({reduced[1], 0});
  grad_.record({reduced[2], 0});
  weight_.roll();
  input_.roll();
  grad_.roll();
  std::fill(step_amax_, step_amax_ + 3, 0.0f);
}

void Fp8Linear::add_to(RunState& state, const std::string& part, const std::string& prefix) {
  if (settings_.recipe != Fp8Recipe::Delayed) return;
  weight_.add_to(state, part, prefix + name_ + ".weight");
  input_.add_to(state, part, prefix + name_ + ".input");
  grad_.add_to(state, part, prefix + name_ + ".grad");
}

}  // namespace lintrain
