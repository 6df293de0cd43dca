// Training-step throughput of a Linear-Llama on the CPU backend: time per
// step (forward + backward + AdamW), tokens/s, and the matmul GFLOP/s the step
// achieves (FLOPs issued through gemm() over the whole step's wall time).
//   usage: bench_step [--hidden 512] [--layers 8] [--seq 2048] [--batch 1]
//                     [--pattern LLLS] [--steps 3] [--threads 0] [--heads 8]
//                     [--variant lightning] [--max-seq 32768]
// With --sweep, runs pure linear attention at T = 1K..max-seq and prints the
// per-token time relative to T = 2K (linear scaling keeps it near 1).
// --variant: model.linear_attention.variant (basic | lightning | retnet | gla).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "layers/model.h"
#include "optim/optimizer.h"
#include "runtime/cpu/gemm.h"
#include "runtime/rng.h"

using namespace lintrain;

struct Result {
  double step_s, tokens_per_s, gflops;
};

static Result run(ModelConfig m, int B, int T, int steps) {
  LinearLlama model(m, B, T);
  model.init_weights(1);
  OptimConfig oc;
  oc.lr = 1e-4;
  auto opt = make_optimizer(model.context(), oc, model.table());
  std::vector<int32_t> tok(static_cast<size_t>(B) * T), tgt(tok.size());
  Rng rng(2);
  for (size_t i = 0; i < tok.size(); ++i) tok[i] = static_cast<int32_t>(rng.below(m.vocab_size)), tgt[i] = static_cast<int32_t>(rng.below(m.vocab_size));
  auto one_step = [&] {
    model.grads().zero();
    model.forward_backward(tok.data(), tgt.data(), 1.0f / tok.size());
    opt->step(model.params(), model.grads(), 1e-4);
  };
  one_step();  // warm-up: first touch of every buffer
  double best = 1e30;
  uint64_t flops = 0;
  for (int s = 0; s < steps; ++s) {
    const uint64_t f0 = gemm_flops();
    const auto t0 = std::chrono::steady_clock::now();
    one_step();
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (dt < best) best = dt, flops = gemm_flops() - f0;
  }
  return {best, B * T / best, flops / best * 1e-9};
}

int main(int argc, char** argv) {
  select_blas_kernels(argc, argv);
  int hidden = 512, layers = 8, seq = 2048, batch = 1, steps = 3, threads = 0, heads = 8;
  std::string pattern = "LLLS", variant = "lightning";
  int max_seq = 32768;
  bool sweep = false;
  for (int i = 1; i < argc; ++i) {
    auto next = [&] { return i + 1 < argc ? argv[++i] : (std::fprintf(stderr, "missing value\n"), std::exit(2), argv[0]); };
    if (!std::strcmp(argv[i], "--hidden")) hidden = std::atoi(next());
    else if (!std::strcmp(argv[i], "--layers")) layers = std::atoi(next());
    else if (!std::strcmp(argv[i], "--seq")) seq = std::atoi(next());
    else if (!std::strcmp(argv[i], "--batch")) batch = std::atoi(next());
    else if (!std::strcmp(argv[i], "--steps")) steps = std::atoi(next());
    else if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(next());
    else if (!std::strcmp(argv[i], "--heads")) heads = std::atoi(next());
    else if (!std::strcmp(argv[i], "--pattern")) pattern = next();
    else if (!std::strcmp(argv[i], "--variant")) variant = next();
    else if (!std::strcmp(argv[i], "--max-seq")) max_seq = std::atoi(next());
    else if (!std::strcmp(argv[i], "--sweep")) sweep = true;
    else { std::fprintf(stderr, "unknown argument %s\n", argv[i]); return 2; }
  }
  set_num_threads(threads);
  ModelConfig m;
  m.vocab_size = 256;
  m.hidden_size = hidden;
  m.num_hidden_layers = layers;
  m.num_attention_heads = heads;
  m.intermediate_size = (hidden * 8 / 3 + 15) / 16 * 16;  // Llama: ~8/3 C, a multiple of 16
  m.layer_pattern = pattern;
  m.linear_attention.variant = variant;
  std::printf("BLAS %s, %d threads; hidden %d, layers %d, heads %d, ffn %d, vocab %d, variant %s\n",
              blas_description(), num_threads(), hidden, layers, heads, m.intermediate_size, m.vocab_size,
              variant.c_str());
  if (!sweep) {
    const Result r = run(m, batch, seq, steps);
    std::printf("pattern %s B=%d T=%d: step %.3f s, %.0f tok/s, matmul %.1f GFLOP/s\n", pattern.c_str(),
                batch, seq, r.step_s, r.tokens_per_s, r.gflops);
    return 0;
  }
  m.layer_pattern = "L";
  std::printf("%8s %10s %12s %14s %10s\n", "T", "step s", "tok/s", "us/token", "vs 2K");
  double ref = 0;
  for (int T : {1024, 2048, 4096, 8192, 16384, 32768}) {
    if (T > max_seq) break;
    const Result r = run(m, 1, T, steps);
    const double us = r.step_s / T * 1e6;
    if (T == 2048) ref = us;
    std::printf("%8d %10.3f %12.0f %14.2f %10s\n", T, r.step_s, r.tokens_per_s, us,
                ref > 0 ? std::to_string(us / ref).substr(0, 5).c_str() : "-");
  }
  return 0;
}
