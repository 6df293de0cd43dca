// The GPU benchmark (run by scripts/gpu_check.sh on the lent GPU machine;
// built by tests/gpu, never in CI). Every figure is printed as a table row
// and against its floor, so a slow kernel shows how far it is from what the
// hardware allows:
//   1. the machine: cuBLAS BF16 and FP32 GEMM TFLOP/s at 8192^3, device copy
//      bandwidth (the floors everything else is measured against);
//   2. each op at a model shape: time, and the floor max(FLOPs / peak,
//      bytes / bandwidth) with the peaks measured in 1;
//   3. the linear-attention core forward + backward per token at T = 2K..64K
//      (flat is the goal: at most 1.2x from 2K to 64K);
//   4. whole training steps (forward, backward, AdamW) of Linear-Llama models
//      in FP32 and BF16 compute: time, tokens/s, MFU against the BF16 peak.
// usage: bench_gpu [--quick]   (--quick: smaller shapes, for a dry run)
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "layers/model.h"
#include "optim/optimizer.h"
#include "runtime/device.h"
#include "runtime/ops.h"
#include "runtime/rng.h"

using namespace lintrain;

namespace {

bool g_quick = false;

void sync() {
  if (cudaDeviceSynchronize() != cudaSuccess) {
    std::fprintf(stderr, "bench_gpu: cudaDeviceSynchronize failed: %s\n", cudaGetErrorString(cudaGetLastError()));
    std::exit(1);
  }
}

// Median wall time of `reps` runs of f (after one warm-up), synchronised.
double time_s(const std::function<void()>& f, int reps = 5) {
  f();
  sync();
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    sync();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

struct Gpu {
  Arena arena{lintrain::Device::CUDA};
  Context ctx{lintrain::Device::CUDA, nullptr, &arena};
  std::vector<Tensor> owned;
  float* floats(size_t n, uint64_t seed = 1, float scale = 1.0f) {
    std::vector<float> h(n);
    Rng rng(seed);
    for (auto& x : h) x = static_cast<float>(rng.normal()) * scale;
    Tensor t = Tensor::zeros({static_cast<int64_t>(std::max<size_t>(n, 1))}, DType::F32, lintrain::Device::CUDA);
    copy_from_host(lintrain::Device::CUDA, t.raw(), h.data(), n * sizeof(float));
    owned.push_back(t);
    return t.data<float>();
  }
};

double g_bf16_peak = 0, g_fp32_peak = 0, g_bandwidth = 0;  // measured: FLOP/s, FLOP/s, B/s

void row(const char* what, double seconds, double flops, double bytes) {
  const double floor_s = std::max(g_bf16_peak > 0 ? flops / g_bf16_peak : 0.0, bytes / g_bandwidth);
  std::printf("| %-46s | %10.3f ms | %8.1f GFLOP/s | %7.1f GB/s | floor %9.3f ms | %6.1fx floor |\n", what,
              seconds * 1e3, flops / seconds * 1e-9, bytes / seconds * 1e-9, floor_s * 1e3, seconds / floor_s);
}

void machine() {
  Gpu dev;
  const int n = g_quick ? 2048 : 8192;
  float* A = dev.floats(static_cast<size_t>(n) * n, 1);
  float* B = dev.floats(static_cast<size_t>(n) * n, 2);
  float* C = dev.floats(static_cast<size_t>(n) * n, 3);
  round_to_bf16(dev.ctx, A, A, int64_t{n} * n);
  round_to_bf16(dev.ctx, B, B, int64_t{n} * n);
  dev.arena.reserve(matmul_bf16_scratch_bytes(lintrain::Device::CUDA, n, n, n));
  const double flops = 2.0 * n * n * n;
  const double t16 = time_s([&] { matmul_bf16(dev.ctx, false, false, n, n, n, 1, A, n, B, n, 0, C, n); });
  const double t32 = time_s([&] { matmul(dev.ctx, false, false, n, n, n, 1, A, n, B, n, 0, C, n); });
  const size_t bytes = sizeof(float) * static_cast<size_t>(n) * n;
  const double tc = time_s([&] { copy_floats(dev.ctx, C, A, int64_t{n} * n); });
  g_bf16_peak = flops / t16;
  g_fp32_peak = flops / t32;
  g_bandwidth = 2.0 * bytes / tc;  // read + write
  std::printf("## 1. machine: %s\n\n", cuda_device_description(0).c_str());
  std::printf("- matmul_bf16 %dx%dx%d (incl. the f32->bf16 packing of A and B): %.1f TFLOP/s\n", n, n, n,
              g_bf16_peak * 1e-12);
  std::printf("- matmul FP32 (cuBLAS SGEMM, no TF32) %dx%dx%d: %.1f TFLOP/s\n", n, n, n, g_fp32_peak * 1e-12);
  std::printf("- copy_floats %.0f MiB: %.0f GB/s (read + write)\n\n", bytes / 1048576.0, g_bandwidth * 1e-9);
}

void ops() {
  Gpu dev;
  const int N = g_quick ? 2048 : 8192, C = 2048, F = 5632, V = 32000, H = 16, d = 128;
  std::printf("## 2. ops at N = %d tokens, C = %d, F = %d, H = %d, d = %d\n\n", N, C, F, H, d);
  std::printf("| op | time | compute | memory | floor | vs floor |\n|---|---|---|---|---|---|\n");
  float* x = dev.floats(static_cast<size_t>(N) * C, 4);
  float* y = dev.floats(static_cast<size_t>(N) * C, 5);
  float* w = dev.floats(C, 6);
  float* dw = dev.floats(C, 20);
  float* rstd = dev.floats(N, 7);
  float* gu = dev.floats(static_cast<size_t>(N) * 2 * F, 8);
  float* h = dev.floats(static_cast<size_t>(N) * F, 9);
  float* dgu = dev.floats(static_cast<size_t>(N) * 2 * F, 19);
  float* W = dev.floats(static_cast<size_t>(F) * 2 * C, 10, 0.02f);
  round_to_bf16(dev.ctx, x, x, int64_t{N} * C);
  round_to_bf16(dev.ctx, W, W, int64_t{F} * 2 * C);
  dev.arena.reserve(std::max(matmul_bf16_scratch_bytes(lintrain::Device::CUDA, N, 2 * F, C),
                             rmsnorm_backward_scratch_bytes(lintrain::Device::CUDA, N, C)));
  const double nc = 4.0 * N * C;
  row("rmsnorm_forward", time_s([&] { rmsnorm_forward(dev.ctx, y, rstd, x, w, N, C, 1e-5f); }), 3.0 * N * C, 2 * nc);
  row("rmsnorm_backward", time_s([&] { rmsnorm_backward(dev.ctx, y, dw, x, x, w, rstd, N, C); }), 8.0 * N * C, 4 * nc);
  row("swiglu_forward", time_s([&] { swiglu_forward(dev.ctx, h, gu, N, F); }), 6.0 * N * F, 12.0 * N * F);
  row("swiglu_backward", time_s([&] { swiglu_backward(dev.ctx, dgu, h, gu, N, F); }), 12.0 * N * F, 20.0 * N * F);
  row("round_to_bf16 (N x C)", time_s([&] { round_to_bf16(dev.ctx, y, x, int64_t{N} * C); }), 0, 2 * nc);
  const double gemm = 2.0 * N * 2 * F * C;
  row("matmul_bf16 gate|up (N x 2F x C)",
      time_s([&] { matmul_bf16(dev.ctx, false, true, N, 2 * F, C, 1, x, C, W, C, 0, gu, 2 * F); }), gemm,
      4.0 * (N * C + 2.0 * F * C + N * 2.0 * F));
  row("matmul fp32 gate|up (N x 2F x C)",
      time_s([&] { matmul(dev.ctx, false, true, N, 2 * F, C, 1, x, C, W, C, 0, gu, 2 * F); }), gemm,
      4.0 * (N * C + 2.0 * F * C + N * 2.0 * F));

  // Attention cores on (B = 1, T = N, H heads of d), GQA 4:1 for softmax.
  const int T = N;
  float* q = dev.floats(static_cast<size_t>(T) * H * d, 11, 0.1f);
  float* k = dev.floats(static_cast<size_t>(T) * H * d, 12, 0.1f);
  float* v = dev.floats(static_cast<size_t>(T) * H * d, 13);
  float* o = dev.floats(static_cast<size_t>(T) * H * d, 14);
  float* dq = dev.floats(static_cast<size_t>(T) * H * d, 15);
  float* dk = dev.floats(static_cast<size_t>(T) * H * d, 16);
  float* dv = dev.floats(static_cast<size_t>(T) * H * d, 17);
  float* lse = dev.floats(static_cast<size_t>(H) * T, 18);
  AttentionDims a;
  a.B = 1, a.Tq = T, a.Tk = T, a.H = H, a.KVH = H / 4, a.d = d;
  dev.arena.reserve(std::max(softmax_attention_forward_scratch_bytes(lintrain::Device::CUDA, a),
                             softmax_attention_backward_scratch_bytes(lintrain::Device::CUDA, a)));
  const double attn_flops = 2.0 * 2.0 * T * (T / 2.0) * d * H;  // q k^T and p v, causal half
  row("softmax_attention_forward (causal, GQA 4:1)",
      time_s([&] { softmax_attention_forward(dev.ctx, a, o, H * d, lse, q, H * d, k, a.KVH * d, v, a.KVH * d); }, 3),
      attn_flops, 4.0 * T * H * d * 4);
  row("softmax_attention_backward",
      time_s([&] {
        softmax_attention_backward(dev.ctx, a, dq, H * d, dk, a.KVH * d, dv, a.KVH * d, o, H * d, q, H * d, k,
                                   a.KVH * d, v, a.KVH * d, o, H * d, lse);
      }, 3),
      2.5 * attn_flops, 4.0 * T * H * d * 8);
  std::vector<float> decay_h(static_cast<size_t>(H), 0.99f);
  float* decay = dev.floats(H);
  copy_from_host(lintrain::Device::CUDA, decay, decay_h.data(), sizeof(float) * H);
  LinearAttentionDims l;
  l.B = 1, l.T = T, l.H = H, l.KVH = H, l.d = d, l.block = 64, l.ldq = l.ldk = l.ldv = l.ldo = H * d;
  dev.arena.reserve(std::max(linear_attention_forward_scratch_bytes(lintrain::Device::CUDA, l),
                             linear_attention_backward_scratch_bytes(lintrain::Device::CUDA, l)));
  // Chunkwise with blocks of 64: intra (2 * 64 * d per token, q k^T and p v)
  // plus inter (4 d^2 per token: q S and the state update), per head.
  const double la_flops = 2.0 * T * H * (2.0 * 64 * d + 2.0 * d * d);
  row("linear_attention_forward (decay 0.99)",
      time_s([&] { linear_attention_forward(dev.ctx, o, q, k, v, decay, nullptr, nullptr, l); }, 3), la_flops,
      4.0 * T * H * d * 4);
  row("linear_attention_backward",
      time_s([&] { linear_attention_backward(dev.ctx, dq, dk, dv, nullptr, o, nullptr, q, k, v, decay, nullptr, l); },
             3),
      2.0 * la_flops, 4.0 * T * H * d * 7);
  std::printf("\n");
}

void linear_attention_sweep() {
  std::printf("## 3. linear attention forward + backward per token (B = 1, H = 16, d = 128)\n\n");
  std::printf("| T | time | per token | vs T = 2K |\n|---|---|---|---|\n");
  const int H = 16, d = 128;
  double base = 0;
  for (int T : {2048, 8192, 32768, 65536}) {
    if (g_quick && T > 8192) break;
    Gpu dev;
    float* q = dev.floats(static_cast<size_t>(T) * H * d, 1, 0.1f);
    float* k = dev.floats(static_cast<size_t>(T) * H * d, 2, 0.1f);
    float* v = dev.floats(static_cast<size_t>(T) * H * d, 3);
    float* o = dev.floats(static_cast<size_t>(T) * H * d, 4);
    float* dq = dev.floats(static_cast<size_t>(T) * H * d, 5);
    float* dk = dev.floats(static_cast<size_t>(T) * H * d, 6);
    float* dv = dev.floats(static_cast<size_t>(T) * H * d, 7);
    std::vector<float> decay_h(static_cast<size_t>(H), 0.99f);
    float* decay = dev.floats(H);
    copy_from_host(lintrain::Device::CUDA, decay, decay_h.data(), sizeof(float) * H);
    LinearAttentionDims l;
    l.B = 1, l.T = T, l.H = H, l.KVH = H, l.d = d, l.block = 64, l.ldq = l.ldk = l.ldv = l.ldo = H * d;
    dev.arena.reserve(std::max(linear_attention_forward_scratch_bytes(lintrain::Device::CUDA, l),
                               linear_attention_backward_scratch_bytes(lintrain::Device::CUDA, l)));
    const double t = time_s(
        [&] {
          linear_attention_forward(dev.ctx, o, q, k, v, decay, nullptr, nullptr, l);
          linear_attention_backward(dev.ctx, dq, dk, dv, nullptr, o, nullptr, q, k, v, decay, nullptr, l);
        },
        3);
    const double per = t / T;
    if (base == 0) base = per;
    std::printf("| %d | %.3f ms | %.3f us | %.2fx |\n", T, t * 1e3, per * 1e6, per / base);
  }
  std::printf("\n");
}

void steps() {
  std::printf("## 4. training steps (forward, backward, AdamW), B = 1\n\n");
  std::printf("| model | T | compute | step | tokens/s | MFU (BF16 peak %.0f TFLOP/s) |\n|---|---|---|---|---|---|\n",
              g_bf16_peak * 1e-12);
  struct Shape {
    const char* name;
    int hidden, layers, heads, kv, inter, T;
    const char* pattern;
  };
  std::vector<Shape> shapes = {{"~1B LLLS", 2048, 16, 16, 4, 5632, 8192, "LLLS"},
                               {"~1B all linear", 2048, 16, 16, 4, 5632, 8192, "L"}};
  if (g_quick) shapes = {{"small LLLS", 512, 4, 8, 2, 1408, 2048, "LLLS"}};
  for (const Shape& s : shapes)
    for (bool bf16 : {false, true}) {
      ModelConfig m;
      m.vocab_size = 32000, m.hidden_size = s.hidden, m.num_hidden_layers = s.layers;
      m.num_attention_heads = s.heads, m.num_key_value_heads = s.kv, m.intermediate_size = s.inter;
      m.layer_pattern = s.pattern;
      LinearLlama model(m, 1, s.T, bf16, nullptr, lintrain::Device::CUDA);
      model.init_weights(1);
      OptimConfig oc;
      oc.lr = 1e-4;
      auto opt = make_optimizer(model.context(), oc, model.table());
      std::vector<int32_t> tok(static_cast<size_t>(s.T)), tgt(tok.size());
      Rng rng(2);
      for (size_t i = 0; i < tok.size(); ++i)
        tok[i] = static_cast<int32_t>(rng.below(m.vocab_size)), tgt[i] = static_cast<int32_t>(rng.below(m.vocab_size));
      const double t = time_s(
          [&] {
            model.grads().zero();
            model.forward_backward(tok.data(), tgt.data(), 1.0f / s.T);
            opt->step(model.params(), model.grads(), 1e-4);
          },
          3);
      // Model FLOPs: 6 per parameter per token, plus the attention cores
      // (softmax: 12 d T per token per head, causal; linear: chunkwise).
      const double P = static_cast<double>(model.table().param_count());
      int softmax_layers = 0;
      for (int i = 0; i < s.layers; ++i) softmax_layers += m.layer_kind(i) == 'S';
      const double d = s.hidden / s.heads;
      const double attn = 6.0 * s.heads * d * s.T * (softmax_layers * s.T / 2.0 * 2.0 +
                                                     (s.layers - softmax_layers) * (2.0 * 64 + 2.0 * d) / 2.0);
      const double flops = 6.0 * P * s.T + attn;
      std::printf("| %s (%.2fB) | %d | %s | %.1f ms | %.0f | %.1f%% |\n", s.name, P * 1e-9, s.T, bf16 ? "bf16" : "fp32",
                  t * 1e3, s.T / t, 100.0 * flops / t / g_bf16_peak);
      std::fflush(stdout);
    }
  std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) g_quick |= std::strcmp(argv[i], "--quick") == 0;
  if (!cuda_available()) {
    std::printf("bench_gpu: no CUDA GPU on this machine; nothing measured\n");
    return 0;
  }
  cuda_use_device(0);
  std::printf("# bench_gpu%s\n\n", g_quick ? " --quick" : "");
  machine();
  std::fflush(stdout);
  ops();
  std::fflush(stdout);
  linear_attention_sweep();
  std::fflush(stdout);
  steps();
  return 0;
}
