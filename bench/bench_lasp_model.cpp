// Latency/bandwidth (alpha-beta) model of LASP-1 against LASP-2, fed with
// figures measured on this machine, extrapolated to W = 64 ranks and 2048K
// tokens (the LASP-2 paper's headline setting).
//
//   mpirun -np 2 bench_lasp_model [--model-tokens 1024] [--kernel-tokens 4096]
//
// 1. alpha, beta of this MPI: ping-pong between ranks 0 and 1 (one-way time =
//    round trip / 2, best of 3 trials). Shared-memory MPI switches protocol
//    with the size (eager copies, then single-copy rendezvous), so one line
//    does not fit 8 B .. 4 MiB; the model needs states of 256 KiB .. 1 MiB, so
//    alpha, beta are the least-squares line over messages >= 256 KiB (the
//    8-byte latency is printed too). Validation: the line must reproduce every
//    size it was fitted on within 25% (else it says so and exits 1), and an
//    MPI_Allgather of one state is compared with the model.
// 2. Compute on one core (rank 0; rank 1 waits): a one-layer Linear-Llama3-1B
//    layer (hidden 2048, 16 heads of d = 128, FFN 8192, lightning variant)
//    forward + backward per token, and the pieces of it LASP-2 overlaps its
//    AllGather with: the intra-chunk kernel forward and backward (the library
//    also overlaps the P-term of dQ; it is left out, which favours LASP-1);
//    plus the LASP-2 prefix merge of W = 64 states and the LASP-1 per-hop
//    state update. Decays: tnl, layer 0 of 16.
// 3. The model, per rank and step, L layers, C = T / W tokens per rank,
//    S = B*H*d*d*4 bytes per state, t_hop = alpha + S*beta:
//      compute = L * C * c_layer + C * c_head        (c_head: the 128K-vocab LM head)
//      LASP-1  = compute + L * 2 * (W-1) * (t_hop + update)   the chain is on
//                the critical path: hop u+1 needs hop u's sum, and the intra-chunk
//                work is already done when the chain starts (LASP-1's best order)
//      LASP-2  = compute + L * sum over fwd, bwd of [max(0, t_ag - window) + merge]
//                t_ag = ring AllGather (W-1) * t_hop: what NCCL and Open MPI use
//                for large messages (bandwidth-optimal; the same bytes per link as
//                LASP-1's chain, so LASP-2 wins only by overlap and by not
//                serialising the ranks); also printed with a recursive-doubling
//                AllGather, ceil(log2 W) alpha + (W-1) S beta.
//    and the predicted LASP-2 throughput advantage LASP-1 / LASP-2 - 1.
// Scenarios: (a) this machine's MPI and compute; (b) cluster links (alpha =
// 5 us, 25 GB/s per link, InfiniBand-HDR / NVLink-class) with this machine's
// compute; (c) cluster links with GPU compute: this machine's measured
// per-token costs scaled by (A100 bf16 312 TFLOP/s * 45% MFU) / this core's
// measured rate, merge at 1.5 TB/s. Each also prints the per-hop time that
// would make LASP-1 15.2% slower (the paper's figure).
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "layers/linear_attention.h"
#include "layers/model.h"
#include "parallel/lasp2.h"
#include "parallel/mpi_communicator.h"
#include "runtime/cpu/gemm.h"
#include "runtime/error.h"
#include "runtime/ops.h"
#include "runtime/rng.h"

using namespace lintrain;

namespace {

double now() { return MPI_Wtime(); }

// Best of `trials` timings of f() (seconds per call, `calls` calls per trial).
template <typename F>
double best_time(int trials, int calls, F&& f) {
  double best = 1e30;
  for (int t = 0; t < trials; ++t) {
    const double t0 = now();
    for (int i = 0; i < calls; ++i) f();
    best = std::min(best, (now() - t0) / calls);
  }
  return best;
}

constexpr size_t kFitFrom = 262144;

struct AlphaBeta {
  double alpha, beta;
};

// Ranks 0 and 1 ping-pong; every rank returns the fit.
AlphaBeta measure_alpha_beta(MPI_Comm comm, bool* fit_ok) {
  int rank;
  MPI_Comm_rank(comm, &rank);
  std::vector<size_t> sizes = {8, 64, 512, 4096, 32768, 262144, 524288, 1048576, 2097152, 4194304};
  std::vector<char> buf(sizes.back());
  std::vector<double> t(sizes.size());
  for (size_t i = 0; i < sizes.size(); ++i) {
    const size_t n = sizes[i];
    const int iters = static_cast<int>(std::clamp<size_t>((64u << 20) / std::max<size_t>(n, 1), 20, 2000));
    double best = 1e30;
    for (int trial = 0; trial < 3; ++trial) {
      MPI_Barrier(comm);
      const double t0 = now();
      for (int k = 0; k < iters; ++k) {
        if (rank == 0) {
          MPI_Send(buf.data(), static_cast<int>(n), MPI_CHAR, 1, 0, comm);
          MPI_Recv(buf.data(), static_cast<int>(n), MPI_CHAR, 1, 0, comm, MPI_STATUS_IGNORE);
        } else if (rank == 1) {
          MPI_Recv(buf.data(), static_cast<int>(n), MPI_CHAR, 0, 0, comm, MPI_STATUS_IGNORE);
          MPI_Send(buf.data(), static_cast<int>(n), MPI_CHAR, 0, 0, comm);
        }
      }
      best = std::min(best, (now() - t0) / (2.0 * iters));
    }
    MPI_Bcast(&best, 1, MPI_DOUBLE, 0, comm);
    t[i] = best;
  }
  // Least squares over n >= kFitFrom.
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  int m = 0;
  for (size_t i = 0; i < sizes.size(); ++i)
    if (sizes[i] >= kFitFrom) {
      const double x = static_cast<double>(sizes[i]);
      sx += x, sy += t[i], sxx += x * x, sxy += x * t[i], ++m;
    }
  const double slope = (m * sxy - sx * sy) / (m * sxx - sx * sx);
  AlphaBeta ab{(sy - slope * sx) / m, slope};
  *fit_ok = true;
  if (rank == 0) {
    std::printf("ping-pong, one-way time (best of 3):\n  %10s %12s %12s %10s\n", "bytes", "measured us",
                "alpha+n*beta", "GB/s");
    for (size_t i = 0; i < sizes.size(); ++i) {
      const double fit = ab.alpha + sizes[i] * ab.beta;
      const bool bad = sizes[i] >= kFitFrom && std::fabs(fit - t[i]) > 0.25 * t[i];
      *fit_ok = *fit_ok && !bad;
      std::printf("  %10zu %12.2f %12.2f %10.2f%s\n", sizes[i], 1e6 * t[i], 1e6 * fit, sizes[i] / t[i] * 1e-9,
                  bad ? "  (fit off by > 25%)" : "");
    }
    std::printf("  fit over >= %zu KiB: alpha = %.2f us, beta = %.4f ns/byte (%.2f GB/s); 8-byte latency %.2f us\n",
                kFitFrom / 1024, 1e6 * ab.alpha, 1e9 * ab.beta, 1e-9 / ab.beta, 1e6 * t[0]);
  }
  MPI_Bcast(fit_ok, 1, MPI_CXX_BOOL, 0, comm);
  return ab;
}

// Per-token compute costs on one core (seconds per token), measured on rank 0.
struct Costs {
  double layer = 0;       // one Linear-Llama3-1B layer, forward + backward
  double rate = 0;        // matmul FLOP/s achieved in that step (for the LM head)
  double intra_fwd = 0;   // LASP-2's forward overlap window
  double intra_bwd = 0;   // its backward window (the kernel backward alone)
  double prefix_dq = 0;   // the P-term of dQ (also overlapped; reported, not counted)
  double merge = 0;       // prefix merge of W states (seconds per merge, not per token)
  double update = 0;      // LASP-1 per-hop update lambda^C P + M (seconds)
};

Costs measure_costs(int model_tokens, int kernel_tokens, int W) {
  Costs c;
  ModelConfig m;
  m.vocab_size = 256;  // the 128K head is costed separately from the GEMM rate
  m.hidden_size = 2048;
  m.num_hidden_layers = 1;
  m.num_attention_heads = 16;
  m.intermediate_size = 8192;
  m.layer_pattern = "L";
  m.linear_attention.variant = "lightning";
  {
    LinearLlama model(m, 1, model_tokens);
    model.init_weights(1);
    std::vector<int32_t> tok(static_cast<size_t>(model_tokens)), tgt(tok.size());
    Rng rng(3);
    for (size_t i = 0; i < tok.size(); ++i) tok[i] = static_cast<int32_t>(rng.below(256)), tgt[i] = static_cast<int32_t>(rng.below(256));
    auto step = [&] {
      model.grads().zero();
      model.forward_backward(tok.data(), tgt.data(), 1.0f / tok.size());
    };
    step();
    double best = 1e30, flops = 0;
    for (int r = 0; r < 2; ++r) {
      const uint64_t f0 = gemm_flops();
      const double t0 = now();
      step();
      const double dt = now() - t0;
      if (dt < best) best = dt, flops = static_cast<double>(gemm_flops() - f0);
    }
    c.layer = best / model_tokens;
    c.rate = flops / best;
  }
  // The kernel pieces at the 1B layer's shape.
  const int H = 16, d = 128, C = kernel_tokens, QKV = 3 * H * d, Hd = H * d;
  const LinearAttentionDims dims{1, C, H, H, d, 64, QKV, QKV, QKV, Hd};
  std::vector<float> qkv(static_cast<size_t>(C) * QKV), out(static_cast<size_t>(C) * Hd),
      dout(out.size()), dqkv(qkv.size()), P(static_cast<size_t>(H) * d * d, 0.01f), M(P.size());
  Rng rng(4);
  for (auto& e : qkv) e = static_cast<float>(0.5 * rng.normal());
  for (auto& e : dout) e = static_cast<float>(rng.normal());
  std::vector<float> decay(H);
  for (int h = 0; h < H; ++h) decay[static_cast<size_t>(h)] = static_cast<float>(tnl_decay(h, H, 0, 16));
  const float *q = qkv.data(), *k = q + Hd, *v = k + Hd;
  Arena arena;
  Context ctx;
  ctx.scratch = &arena;
  arena.reserve(std::max({linear_attention_forward_scratch_bytes(Device::CPU, dims),
                          linear_attention_backward_scratch_bytes(Device::CPU, dims),
                          lasp2_terms_scratch_bytes(Device::CPU, dims),
                          lasp2_merge_states_scratch_bytes(Device::CPU, 1, H, d)}));
  c.intra_fwd = best_time(3, 1, [&] {
                  linear_attention_forward(ctx, out.data(), q, k, v, decay.data(), nullptr, nullptr, dims);
                }) / C;
  c.intra_bwd = best_time(3, 1, [&] {
                  linear_attention_backward(ctx, dqkv.data(), dqkv.data() + Hd, dqkv.data() + 2 * Hd, nullptr,
                                            dout.data(), nullptr, q, k, v, decay.data(), nullptr, dims);
                }) / C;
  c.prefix_dq = best_time(3, 1, [&] {
                  lasp2_add_prefix_dq(ctx, dqkv.data(), dout.data(), P.data(), decay.data(), dims);
                }) / C;
  std::vector<float> gathered(static_cast<size_t>(W) * P.size(), 0.001f);
  c.merge = best_time(3, 1, [&] {
    lasp2_prefix_states(ctx, M.data(), gathered.data(), W, W - 1, 1, H, d, 32768, decay.data());
  });
  c.update = best_time(3, 10, [&] {
    for (size_t i = 0; i < M.size(); ++i) M[i] = 0.5f * M[i] + P[i];
  });
  return c;
}

struct Scenario {
  const char* name;
  double alpha, beta;      // link
  double c_layer, c_head;  // seconds per token (per layer; LM head)
  double w_fwd, w_bwd;     // overlap windows, seconds per token
  double merge, update;    // seconds
};

void predict(const Scenario& s, int L, int W, double T, double S) {
  const double C = T / W, hop = s.alpha + S * s.beta;
  const double compute = L * C * s.c_layer + C * s.c_head;
  const double chain = (W - 1) * (hop + s.update);
  const double lasp1 = compute + L * 2 * chain;
  auto lasp2 = [&](double t_ag) {
    return compute + L * (std::max(0.0, t_ag - C * s.w_fwd) + std::max(0.0, t_ag - C * s.w_bwd) + 2 * s.merge);
  };
  const double ring = (W - 1) * hop, tree = std::ceil(std::log2(W)) * s.alpha + (W - 1) * S * s.beta;
  const double l2r = lasp2(ring), l2t = lasp2(tree);
  // Per-hop time at which LASP-1 would be 15.2% slower than LASP-2 (LASP-2 fixed at its ring estimate).
  const double hop_needed = (0.152 * l2r + l2r - compute) / (L * 2.0 * (W - 1)) - s.update;
  std::printf("| %s | %.4g | %.3f | %.3f | %.3f | %.3f | **%+.2f%%** (tree %+.2f%%) | %+.2f%% | %.0f us |\n", s.name,
              compute, 1e3 * hop, 1e3 * L * 2 * chain, 1e3 * (l2r - compute), 1e3 * L * C * (s.w_fwd + s.w_bwd),
              100 * (lasp1 / l2r - 1), 100 * (lasp1 / l2t - 1), 100 * (lasp1 / compute - 1), 1e6 * hop_needed);
}

}  // namespace

int main(int argc, char** argv) {
  select_blas_kernels(argc, argv);
  int model_tokens = 1024, kernel_tokens = 4096;
  for (int i = 1; i < argc; ++i) {
    auto next = [&] { return i + 1 < argc ? std::atoi(argv[++i]) : (std::fprintf(stderr, "missing value\n"), std::exit(2), 0); };
    if (!std::strcmp(argv[i], "--model-tokens")) model_tokens = next();
    else if (!std::strcmp(argv[i], "--kernel-tokens")) kernel_tokens = next();
    else { std::fprintf(stderr, "unknown argument %s\n", argv[i]); return 2; }
  }
  MpiRuntime mpi(&argc, &argv);
  try {
    if (mpi.size() < 2) throw Error("run under mpirun -np 2 (ping-pong needs two ranks)");
    set_num_threads(1);
    MPI_Comm comm;
    LT_MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &comm));
    bool fit_ok = false;
    const AlphaBeta ab = measure_alpha_beta(comm, &fit_ok);

    // Paper setting: Linear-Llama3-1B-like, W = 64, 2048K tokens, B = 1.
    const int L = 16, W = 64, H = 16, d = 128, vocab = 128256, hidden = 2048;
    const double T = 2048.0 * 1024, S = 1.0 * H * d * d * 4;

    // Validation of the fit on a collective: AllGather of one state over these ranks.
    {
      auto world = mpi.world();
      std::vector<float> mine(static_cast<size_t>(S / 4), 1.0f), all(mine.size() * world->size());
      MPI_Barrier(comm);
      const double t = best_time(3, 20, [&] { world->all_gather(mine.data(), all.data(), mine.size()); });
      if (mpi.rank() == 0)
        std::printf("  check: MPI_Allgather of one %.0f KiB state on %d ranks: %.1f us; ring model (W-1)(alpha+S beta) = %.1f us\n",
                    S / 1024, world->size(), 1e6 * t, 1e6 * (world->size() - 1) * (ab.alpha + S * ab.beta));
    }

    Costs c;
    if (mpi.rank() == 0) c = measure_costs(model_tokens, kernel_tokens, W);
    MPI_Barrier(comm);
    if (mpi.rank() == 0) {
      const double head_flops = 6.0 * hidden * vocab;  // per token, forward + backward
      std::printf("\ncompute on one core (this machine, 1 thread):\n"
                  "  Linear-Llama3-1B layer (hidden 2048, 16 x d128, FFN 8192, lightning), fwd+bwd: %.1f us/token "
                  "(T=%d; matmuls at %.1f GFLOP/s)\n"
                  "  LM head 2048 x 128256 at that rate: %.1f us/token\n"
                  "  overlap windows (intra-chunk kernel, C=%d): fwd %.2f us/token, bwd %.2f us/token "
                  "(P-term of dQ, also overlappable, not counted: %.2f us/token)\n"
                  "  LASP-2 prefix merge of %d states (%.0f KiB each): %.2f ms; LASP-1 hop update: %.1f us\n",
                  1e6 * c.layer, model_tokens, 1e-9 * c.rate, 1e6 * head_flops / c.rate, kernel_tokens,
                  1e6 * c.intra_fwd, 1e6 * c.intra_bwd, 1e6 * c.prefix_dq, W, S / 1024, 1e3 * c.merge, 1e6 * c.update);
      const double gpu_rate = 312e12 * 0.45, scale = c.rate / gpu_rate, hbm = 1.5e12;
      const Scenario sc[] = {
          {"(a) this machine: its MPI, its core", ab.alpha, ab.beta, c.layer, head_flops / c.rate, c.intra_fwd,
           c.intra_bwd, c.merge, c.update},
          {"(b) cluster links (5 us, 25 GB/s), this core", 5e-6, 1 / 25e9, c.layer, head_flops / c.rate, c.intra_fwd,
           c.intra_bwd, c.merge, c.update},
          {"(c) cluster links, A100-class GPU (140 TFLOP/s)", 5e-6, 1 / 25e9, c.layer * scale, head_flops / gpu_rate,
           c.intra_fwd * scale, c.intra_bwd * scale, W * S / hbm, 3 * S / hbm},
      };
      std::printf("\nmodel: L=%d layers, W=%d ranks, T=%.0fK tokens (C=%.0f per rank), B=1, H=%d, d=%d, "
                  "state S=%.0f KiB\n",
                  L, W, T / 1024, T / W, H, d, S / 1024);
      std::printf("| scenario | compute s/step | hop ms | LASP-1 chain ms/step | LASP-2 exposed ms/step | "
                  "LASP-2 overlap window ms/step | LASP-2 advantage (ring) | bound: LASP-2 fully hidden | hop for +15.2%% |\n"
                  "|---|---|---|---|---|---|---|---|---|\n");
      for (const Scenario& s : sc) predict(s, L, W, T, S);
      std::printf("(paper: LASP-2 +15.2%% over LASP-1 at 64 GPUs, 2048K tokens)\n");
      if (!fit_ok) std::fprintf(stderr, "bench_lasp_model: the alpha-beta fit does not describe the measurements\n");
    }
    MPI_Comm_free(&comm);
    return fit_ok ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_lasp_model: error (rank %d): %s\n", mpi.rank(), e.what());
    MpiRuntime::abort(1);
  }
}
