// GaLore step time on one weight matrix: a refresh step (SVD of the gradient
// plus the update) against an ordinary step (project, Adam in rank r, project
// back), for the exact and the randomized SVD. Validates before timing: the
// refreshed projector is orthonormal, and the randomized subspace is close to
// the exact one on a gradient with a decaying spectrum.
//   usage: bench_galore [--m 512] [--n 1376] [--rank 128] [--reps 5] [--threads 0]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "optim/galore.h"
#include "runtime/cpu/gemm.h"
#include "runtime/rng.h"

using namespace lintrain;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// A gradient-like matrix: sum_i 0.97^i a_i b_i^T (i < 256, Gaussian a_i, b_i) plus noise.
void decaying_gradient(float* G, int m, int n, Rng& rng) {
  const int q = 256;
  std::vector<float> A(static_cast<size_t>(m) * q), B(static_cast<size_t>(q) * n);
  for (int k = 0; k < q; ++k)
    for (int i = 0; i < m; ++i) A[static_cast<size_t>(i) * q + k] = static_cast<float>(std::pow(0.97, k) * rng.normal());
  for (float& x : B) x = static_cast<float>(rng.normal());
  gemm(false, false, m, n, q, 1.0f, A.data(), q, B.data(), n, 0.0f, G, n);
  for (int64_t i = 0; i < int64_t{m} * n; ++i) G[i] += static_cast<float>(0.01 * rng.normal());
}

// ||P P^T - I_r|| in the orthonormal direction of P (rows or columns).
double orthonormality_error(const float* P, int m, int n, int r) {
  const bool left = m < n;
  const int s = left ? m : n;
  double worst = 0.0;
  for (int a = 0; a < r; ++a)
    for (int b = 0; b < r; ++b) {
      double dot = 0.0;
      for (int i = 0; i < s; ++i) dot += left ? double(P[i * r + a]) * P[i * r + b] : double(P[a * n + i]) * P[b * n + i];
      worst = std::max(worst, std::fabs(dot - (a == b ? 1.0 : 0.0)));
    }
  return worst;
}

// ||P1 P1^T - P2 P2^T||_F = sqrt(2 (r - ||P1^T P2||_F^2)) for orthonormal bases.
double subspace_distance(const float* P1, const float* P2, int m, int n, int r) {
  const bool left = m < n;
  const int s = left ? m : n;
  double overlap = 0.0;
  for (int a = 0; a < r; ++a)
    for (int b = 0; b < r; ++b) {
      double dot = 0.0;
      for (int i = 0; i < s; ++i) dot += left ? double(P1[i * r + a]) * P2[i * r + b] : double(P1[a * n + i]) * P2[b * n + i];
      overlap += dot * dot;
    }
  return std::sqrt(std::max(0.0, 2.0 * (r - overlap)));
}

struct Timing {
  double refresh_s, plain_s;
  std::vector<float> projector;
};

// Times `reps` refresh steps (gap 1) and `reps` ordinary steps (gap huge).
Timing time_steps(const std::string& svd, int rank, int reps, const FlatBuffer& grads, const ParamTable& table) {
  OptimConfig cfg;
  cfg.galore.rank = rank;
  cfg.galore.svd = svd;
  ParamGroup group;
  group.name = "galore";
  group.optimizer = "galore";
  group.views = {0};
  FlatBuffer params(table);
  Timing out{1e30, 1e30, {}};
  for (int gap : {1, 1 << 30}) {
    cfg.galore.update_proj_gap = gap;
    Galore opt(Context{}, cfg, group, table, 1);
    opt.step(params, grads, 1e-3);  // the first step always refreshes; warm-up
    if (gap == 1) out.projector.assign(opt.state_tensors()[0].data, opt.state_tensors()[0].data + opt.state_tensors()[0].numel);
    for (int k = 0; k < reps; ++k) {
      const auto t0 = std::chrono::steady_clock::now();
      opt.step(params, grads, 1e-3);
      double& best = gap == 1 ? out.refresh_s : out.plain_s;
      best = std::min(best, seconds_since(t0));
    }
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  select_blas_kernels(argc, argv);
  int m = 512, n = 1376, rank = 128, reps = 5, threads = 0;
  for (int i = 1; i < argc; ++i) {
    auto next = [&] { return i + 1 < argc ? argv[++i] : (std::fprintf(stderr, "missing value\n"), std::exit(2), argv[0]); };
    if (!std::strcmp(argv[i], "--m")) m = std::atoi(next());
    else if (!std::strcmp(argv[i], "--n")) n = std::atoi(next());
    else if (!std::strcmp(argv[i], "--rank")) rank = std::atoi(next());
    else if (!std::strcmp(argv[i], "--reps")) reps = std::atoi(next());
    else if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(next());
    else return std::fprintf(stderr, "unknown option %s\n", argv[i]), 2;
  }
  set_num_threads(threads);
  ParamTable table;
  table.add("w", {m, n});
  FlatBuffer grads(table);
  Rng rng(1);
  decaying_gradient(grads.data(), m, n, rng);
  const int r = std::min({rank, m, n});

  std::printf("GaLore step on a %d x %d matrix, rank %d, %d thread(s), %s\n", m, n, r, num_threads(),
              blas_description());
  const Timing exact = time_steps("exact", rank, reps, grads, table);
  const Timing randomized = time_steps("randomized", rank, reps, grads, table);
  const double ortho = std::max(orthonormality_error(exact.projector.data(), m, n, r),
                                orthonormality_error(randomized.projector.data(), m, n, r));
  const double dist = subspace_distance(exact.projector.data(), randomized.projector.data(), m, n, r);
  std::printf("  validation: max |P^T P - I| = %.2e, ||P_rand P_rand^T - P_exact P_exact^T||_F = %.3f (of at most %.1f)\n",
              ortho, dist, std::sqrt(2.0 * r));
  std::printf("  %-28s %10.2f ms\n", "step without refresh", 1e3 * std::min(exact.plain_s, randomized.plain_s));
  std::printf("  %-28s %10.2f ms\n", "refresh step, exact SVD", 1e3 * exact.refresh_s);
  std::printf("  %-28s %10.2f ms\n", "refresh step, randomized SVD", 1e3 * randomized.refresh_s);
  if (ortho > 1e-4) return std::fprintf(stderr, "FAILED: projector not orthonormal\n"), 1;
  return 0;
}
