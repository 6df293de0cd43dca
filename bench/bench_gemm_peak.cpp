// The machine's fp32 GEMM peak through the same BLAS lintrain uses: the
// denominator of the training-step efficiency in bench_step. Square and
// training-shaped products, best of several repetitions, all threads.
//   usage: bench_gemm_peak [threads]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "runtime/cpu/gemm.h"
#include "runtime/rng.h"

using namespace lintrain;

static double best_gflops(int M, int N, int K, bool ta, bool tb, int reps) {
  std::vector<float> A(static_cast<size_t>(M) * K), B(static_cast<size_t>(K) * N), C(static_cast<size_t>(M) * N);
  Rng rng(1);
  for (auto& x : A) x = static_cast<float>(rng.normal());
  for (auto& x : B) x = static_cast<float>(rng.normal());
  const int lda = ta ? M : K, ldb = tb ? K : N;
  gemm(ta, tb, M, N, K, 1.0f, A.data(), lda, B.data(), ldb, 0.0f, C.data(), N);  // warm-up
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    gemm(ta, tb, M, N, K, 1.0f, A.data(), lda, B.data(), ldb, 0.0f, C.data(), N);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, 2.0 * M * N * K / s * 1e-9);
  }
  return best;
}

int main(int argc, char** argv) {
  select_blas_kernels(argc, argv);
  set_num_threads(argc > 1 ? std::atoi(argv[1]) : 0);
  std::printf("BLAS: %s, threads %d\n", blas_description(), num_threads());
  std::printf("%-34s %10s\n", "shape (M x N x K, op)", "GFLOP/s");
  double peak = 0;
  struct S { int M, N, K; bool ta, tb; const char* what; };
  const S shapes[] = {{1024, 1024, 1024, false, false, "square 1024"},
                      {2048, 2048, 2048, false, false, "square 2048"},
                      {4096, 1536, 512, false, true, "qkv fwd  (N=4096, C=512)"},
                      {4096, 512, 1376, false, true, "down fwd (N=4096, F=1376)"},
                      {1376, 512, 4096, true, false, "weight grad (F x C, N=4096)"}};
  for (const S& s : shapes) {
    const double g = best_gflops(s.M, s.N, s.K, s.ta, s.tb, 5);
    peak = std::max(peak, g);
    std::printf("%-34s %10.1f\n", s.what, g);
  }
  std::printf("peak %.1f GFLOP/s\n", peak);
  return 0;
}
