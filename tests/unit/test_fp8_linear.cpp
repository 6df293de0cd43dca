// The FP8 linear layer (layers/fp8_linear.h) and the model's FP8 GEMMs:
//   - the layer's three GEMMs against a float64 reference that quantises with
//     the independent FP8 tables of fp8_reference.h (each recipe and format);
//   - the delayed recipe across steps, with the amaxes reduced over ranks;
//   - the model in FP8 under SP=2 and DP=2 against one rank;
//   - the delayed state through a RunState (what a checkpoint saves).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <mutex>
#include <vector>

#include "fp8_reference.h"
#include "layers/fp8_linear.h"
#include "layers/model.h"
#include "runtime/arena.h"
#include "runtime/checkpoint/run_state.h"
#include "runtime/rng.h"
#include "sp_test_group.h"

using namespace lintrain;

namespace {

// Reference quantisation: fp8(x * s) by the table search, read back / s, in double.
double ref_q(float x, double s, Fp8Format f) {
  const float scaled = static_cast<float>(static_cast<double>(x) * s);  // the op rounds the product to f32
  return test::fp8_reference_decode(test::fp8_reference_encode(scaled, f, true), f) / s;
}
double fmax_of(Fp8Format f) { return f == Fp8Format::E4M3 ? 448.0 : 57344.0; }
double per_tensor_scale(const std::vector<float>& x, Fp8Format f, int margin) {
  double amax = 0;
  for (float v : x) amax = std::max(amax, std::fabs(static_cast<double>(v)));
  return static_cast<float>(fmax_of(f) / amax / std::ldexp(1.0, margin));
}
// Power-of-two tile scales 2^floor(log2(fmax / amax)) over tiles of tr x tc.
std::vector<double> ref_blockwise(const std::vector<float>& x, int rows, int cols, int tr, int tc, Fp8Format f) {
  std::vector<double> out(x.size());
  for (int r0 = 0; r0 < rows; r0 += tr)
    for (int c0 = 0; c0 < cols; c0 += tc) {
      double amax = 0;
      for (int r = r0; r < std::min(rows, r0 + tr); ++r)
        for (int c = c0; c < std::min(cols, c0 + tc); ++c) amax = std::max(amax, std::fabs(double(x[r * cols + c])));
      const double s = amax > 0 ? std::ldexp(1.0, static_cast<int>(std::floor(std::log2(fmax_of(f) / amax)))) : 1.0;
      for (int r = r0; r < std::min(rows, r0 + tr); ++r)
        for (int c = c0; c < std::min(cols, c0 + tc); ++c) out[r * cols + c] = ref_q(x[r * cols + c], s, f);
    }
  return out;
}

std::vector<float> randn(int n, double scale, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(rng.normal() * scale);
  return v;
}

struct LayerCase {
  int N = 5, C = 160, OC = 136;  // C, OC past one 128 tile: edge tiles
  std::vector<float> x = randn(N * C, 1.0, 1), w = randn(OC * C, 0.05, 2), g = randn(N * OC, 1e-3, 3);
};

// |got - ref| <= tol over the GEMM outputs, tol from FP32 accumulation of K
// products: K * 2^-24 * sum |a||b| (the float64 reference is exact to 1e-16).
void expect_gemm_close(const std::vector<float>& got, const std::vector<double>& ref,
                       const std::vector<double>& mag, int K, const char* what) {
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i)
    worst = std::max(worst, std::fabs(got[i] - ref[i]) / (K * std::ldexp(1.0, -24) * mag[i] + 1e-30));
  EXPECT_LE(worst, 1.0) << what;
}

// The layer's forward, dgrad and wgrad against the float64 GEMMs of the
// reference-quantised operands qx (N, C), qw (OC, C), qg (N, OC).
void check_layer(Fp8Linear& layer, const LayerCase& t, const std::vector<double>& qx, const std::vector<double>& qw,
                 const std::vector<double>& qg, const std::string& what) {
  const int N = t.N, C = t.C, OC = t.OC;
  Arena arena(Device::CPU);
  arena.reserve(Fp8Linear::scratch_bytes(Device::CPU, Fp8Settings{}, N, C, OC) * 2);
  const Context ctx{Device::CPU, nullptr, &arena};
  std::vector<float> out(N * OC), dinp(N * C), dw(OC * C, 0.0f);
  Fp8Counts counts[kFp8Classes];
  layer.forward(ctx, out.data(), t.x.data(), t.w.data(), N, C, OC, false, true, counts, nullptr);
  layer.backward(ctx, dinp.data(), dw.data(), t.g.data(), t.x.data(), t.w.data(), N, C, OC, false, counts, nullptr);
  std::vector<double> ref(N * OC), mag(N * OC);
  for (int n = 0; n < N; ++n)
    for (int o = 0; o < OC; ++o)
      for (int c = 0; c < C; ++c) {
        ref[n * OC + o] += qx[n * C + c] * qw[o * C + c];
        mag[n * OC + o] += std::fabs(qx[n * C + c] * qw[o * C + c]);
      }
  expect_gemm_close(out, ref, mag, C, (what + " forward").c_str());
  ref.assign(N * C, 0), mag.assign(N * C, 0);
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c)
      for (int o = 0; o < OC; ++o) {
        ref[n * C + c] += qg[n * OC + o] * qw[o * C + c];
        mag[n * C + c] += std::fabs(qg[n * OC + o] * qw[o * C + c]);
      }
  expect_gemm_close(dinp, ref, mag, OC, (what + " dgrad").c_str());
  ref.assign(OC * C, 0), mag.assign(OC * C, 0);
  for (int o = 0; o < OC; ++o)
    for (int c = 0; c < C; ++c)
      for (int n = 0; n < N; ++n) {
        ref[o * C + c] += qg[n * OC + o] * qx[n * C + c];
        mag[o * C + c] += std::fabs(qg[n * OC + o] * qx[n * C + c]);
      }
  expect_gemm_close(dw, ref, mag, N, (what + " wgrad").c_str());
}

std::vector<double> ref_per_tensor(const std::vector<float>& x, double s, Fp8Format f) {
  std::vector<double> q(x.size());
  for (size_t i = 0; i < x.size(); ++i) q[i] = ref_q(x[i], s, f);
  return q;
}

TEST(Fp8Linear, CurrentAndBlockwiseMatchFloat64Reference) {
  const LayerCase t;
  for (const char* format : {"hybrid", "e4m3"}) {
    Fp8Settings s;
    s.formats = fp8_formats_from_name(format);
    s.delayed.margin = 1;
    const Fp8Format fw = s.formats.forward, fb = s.formats.backward;
    s.recipe = Fp8Recipe::Current;
    Fp8Linear current("w", s);
    check_layer(current, t, ref_per_tensor(t.x, per_tensor_scale(t.x, fw, 1), fw),
                ref_per_tensor(t.w, per_tensor_scale(t.w, fw, 1), fw),
                ref_per_tensor(t.g, per_tensor_scale(t.g, fb, 1), fb), str_cat("current ", format));
    s.recipe = Fp8Recipe::Blockwise;
    Fp8Linear blockwise("w", s);
    check_layer(blockwise, t, ref_blockwise(t.x, t.N, t.C, 1, 128, fw), ref_blockwise(t.w, t.OC, t.C, 128, 128, fw),
                ref_blockwise(t.g, t.N, t.OC, 1, 128, fb), str_cat("blockwise ", format));
  }
}

// Delayed: step 1 quantises with scale 1; step 2 with (fmax / amax of step 1).
TEST(Fp8Linear, DelayedUsesThePreviousStepsAmax) {
  const LayerCase t;
  Fp8Settings s;
  s.recipe = Fp8Recipe::Delayed;
  s.delayed.amax_history_len = 4;
  Fp8Linear layer("w", s);
  const Fp8Format fw = s.formats.forward, fb = s.formats.backward;
  check_layer(layer, t, ref_per_tensor(t.x, 1.0, fw), ref_per_tensor(t.w, 1.0, fw), ref_per_tensor(t.g, 1.0, fb),
              "delayed step 1");
  float amax[3];
  layer.local_amaxes(amax);
  layer.end_step(amax);
  check_layer(layer, t, ref_per_tensor(t.x, per_tensor_scale(t.x, fw, 0), fw),
              ref_per_tensor(t.w, per_tensor_scale(t.w, fw, 0), fw),
              ref_per_tensor(t.g, per_tensor_scale(t.g, fb, 0), fb), "delayed step 2");
}

// Two ranks with different activations: after end_step over the group both
// hold the scales of the larger amax, so they quantise identically; the
// state's entries carry them.
TEST(Fp8Linear, DelayedAmaxesAreReducedOverRanks) {
  std::vector<std::vector<float>> scales(2);
  test::SpTestGroup::run(2, [&](Communicator& comm, int r) {
    LayerCase t;
    for (auto& v : t.x) v *= static_cast<float>(r + 1);  // rank 1's amax is twice rank 0's
    Fp8Settings s;
    s.delayed.amax_history_len = 3;
    Fp8Linear layer("w", s);
    Arena arena(Device::CPU);
    arena.reserve(Fp8Linear::scratch_bytes(Device::CPU, s, t.N, t.C, t.OC));
    const Context ctx{Device::CPU, nullptr, &arena};
    std::vector<float> out(t.N * t.OC), dinp(t.N * t.C), dw(t.OC * t.C, 0.0f);
    const AmaxReduce reduce = [&comm](float* a, int n) {
      std::vector<float> all(2 * static_cast<size_t>(n));
      comm.all_gather(a, all.data(), static_cast<size_t>(n));
      for (int i = 0; i < n; ++i) a[i] = std::max(all[i], all[n + i]);
    };
    layer.forward(ctx, out.data(), t.x.data(), t.w.data(), t.N, t.C, t.OC, false, true, nullptr, reduce);
    layer.backward(ctx, dinp.data(), dw.data(), t.g.data(), t.x.data(), t.w.data(), t.N, t.C, t.OC, false, nullptr,
                   reduce);
    float amax[3];
    layer.local_amaxes(amax);
    reduce(amax, 3);
    layer.end_step(amax);
    RunState state;
    layer.add_to(state, "trainer", "fp8/");
    const StateEntry* e = state.find("trainer", "fp8/w.input.fp8_scale");
    ASSERT_NE(e, nullptr);
    const StateEntry* h = state.find("trainer", "fp8/w.input.fp8_amax_history");
    ASSERT_NE(h, nullptr);
    scales[r] = {static_cast<float*>(e->data)[0], static_cast<float*>(h->data)[2]};
  });
  LayerCase t2;
  for (auto& v : t2.x) v *= 2.0f;
  EXPECT_EQ(scales[0], scales[1]);
  EXPECT_FLOAT_EQ(scales[0][0], static_cast<float>(per_tensor_scale(t2.x, Fp8Format::E4M3, 0)));
}

ModelConfig small_model() {
  ModelConfig m;
  m.vocab_size = 29;
  m.hidden_size = 16;
  m.num_hidden_layers = 2;
  m.num_attention_heads = 4;
  m.num_key_value_heads = 2;
  m.intermediate_size = 24;
  m.layer_pattern = "LS";
  m.linear_attention.block_size = 3;
  m.initializer_range = 0.2;
  return m;
}

Fp8ModelOptions options(Fp8Recipe recipe, Communicator* comm) {
  Fp8ModelOptions o;
  o.settings.recipe = recipe;
  o.settings.delayed.amax_history_len = 4;
  o.selected = [](const std::string&) { return true; };
  if (comm)
    o.reduce = [comm](float* a, int n) {
      std::vector<float> all(static_cast<size_t>(n) * comm->size());
      comm->all_gather(a, all.data(), static_cast<size_t>(n));
      for (int r = 0; r < comm->size(); ++r)
        for (int i = 0; i < n; ++i) a[i] = std::max(a[i], all[static_cast<size_t>(r) * n + i]);
    };
  return o;
}

// Two FP8 steps (the second with the delayed scales the first chose) on one
// rank, and on W ranks split by sequence (sp) or by batch (dp): the summed
// gradients of the second step equal one rank's.
void check_split_matches_single(Fp8Recipe recipe, bool sp) {
  const ModelConfig cfg = small_model();
  const int B = 2, T = 12, W = 2;
  Rng rng(17);
  std::vector<int32_t> tokens(B * T), targets(B * T);
  for (auto& t : tokens) t = static_cast<int32_t>(rng.below(cfg.vocab_size));
  for (auto& t : targets) t = static_cast<int32_t>(rng.below(cfg.vocab_size));
  const float scale = 1.0f / (B * T);
  LinearLlama single(cfg, B, T);
  single.enable_fp8(options(recipe, nullptr));
  single.init_weights(3);
  single.grads().zero();
  single.forward_backward(tokens.data(), targets.data(), scale);
  single.fp8_end_step();
  single.grads().zero();
  const CrossEntropyStats ref = single.forward_backward(tokens.data(), targets.data(), scale);

  std::vector<double> grad_sum(single.grads().numel(), 0.0);
  double loss_sum = 0;
  std::mutex mu;
  test::SpTestGroup::run(W, [&](Communicator& comm, int j) {
    const int b = sp ? B : B / W, t = sp ? T / W : T;
    LinearLlama model(cfg, b, t, false, sp ? &comm : nullptr);
    model.enable_fp8(options(recipe, &comm));
    model.init_weights(3);
    std::vector<int32_t> tok(b * t), tgt(b * t);
    for (int bi = 0; bi < b; ++bi)
      for (int ti = 0; ti < t; ++ti) {
        const int src = sp ? bi * T + j * t + ti : (j * b + bi) * T + ti;
        tok[bi * t + ti] = tokens[src];
        tgt[bi * t + ti] = targets[src];
      }
    model.grads().zero();
    model.forward_backward(tok.data(), tgt.data(), scale);
    model.fp8_end_step();
    model.grads().zero();
    const CrossEntropyStats s = model.forward_backward(tok.data(), tgt.data(), scale);
    std::lock_guard<std::mutex> lock(mu);
    loss_sum += s.loss_sum;
    for (int64_t i = 0; i < model.grads().numel(); ++i) grad_sum[i] += model.grads().data()[i];
  });
  // The FP32 tolerance of test_model_sp: the ranks quantise the same values
  // with the same scales and tiles, so only the sums' association differs.
  EXPECT_NEAR(loss_sum, ref.loss_sum, 1e-5 * ref.loss_sum);
  double max_err = 0, max_ref = 0;
  for (int64_t i = 0; i < single.grads().numel(); ++i) {
    max_err = std::max(max_err, std::fabs(grad_sum[i] - single.grads().data()[i]));
    max_ref = std::max(max_ref, std::fabs(static_cast<double>(single.grads().data()[i])));
  }
  EXPECT_LT(max_err, 1e-5 * max_ref) << (sp ? "SP=2" : "DP=2") << " recipe " << static_cast<int>(recipe);
}

TEST(Fp8Model, SequenceParallelMatchesOneRank) {
  for (Fp8Recipe r : {Fp8Recipe::Delayed, Fp8Recipe::Current, Fp8Recipe::Blockwise}) check_split_matches_single(r, true);
}

TEST(Fp8Model, DataParallelMatchesOneRank) {
  for (Fp8Recipe r : {Fp8Recipe::Delayed, Fp8Recipe::Current, Fp8Recipe::Blockwise}) check_split_matches_single(r, false);
}

TEST(Fp8Model, FusedGemmMustBeSelectedWhole) {
  LinearLlama model(small_model(), 1, 4);
  Fp8ModelOptions o = options(Fp8Recipe::Current, nullptr);
  o.selected = [](const std::string& name) { return name.find("k_proj") == std::string::npos; };
  EXPECT_THROW(model.enable_fp8(o), ConfigError);
}

TEST(Fp8Model, CountsAndStateOfEachGemm) {
  LinearLlama model(small_model(), 1, 6);
  model.enable_fp8(options(Fp8Recipe::Delayed, nullptr));
  model.init_weights(3);
  // 2 layers x (qkv, o, gate|up, down) + the gated linear layer's g_proj.
  const size_t gemms = model.fp8_gemms().size();
  EXPECT_GE(gemms, 8u);
  RunState state;
  model.add_fp8_state(state, "trainer");
  EXPECT_EQ(state.entries().size(), gemms * 3 * 3);  // 3 roles x (scale, history, events)
  EXPECT_NE(state.find("trainer", "fp8/model.layers.0.self_attn.q_proj.input.fp8_amax_history"), nullptr);
  std::vector<int32_t> tok(6, 1), tgt(6, 2);
  model.grads().zero();
  model.forward_backward(tok.data(), tgt.data(), 1.0f);
  const Fp8StepCounts c = model.take_fp8_counts();
  // Scale 1 on the first step: weights of std 0.2 mostly fit, but some are
  // below E4M3's smallest subnormal 2^-9 and flush.
  EXPECT_GT(c.by_class[0].flushed, 0);
  EXPECT_GT(c.quantised[0], 0);
  EXPECT_GT(c.quantised[2], 0);
  const Fp8StepCounts again = model.take_fp8_counts();
  EXPECT_EQ(again.by_class[0].flushed, 0);  // read and reset
  EXPECT_EQ(again.quantised[0], 0);
}

}  // namespace
