#include "runtime/cpu/gemm.h"

#include <cblas.h>
#include <omp.h>

#include <unistd.h>
#if defined(__SSE2__)
#include <pmmintrin.h>
#include <xmmintrin.h>
#endif

#include <atomic>
#include <cctype>
#include <cstdlib>
#include <string>

#include "runtime/error.h"

extern "C" {
// OpenBLAS extensions (declared in its cblas.h, repeated for other CBLAS builds).
void openblas_set_num_threads(int);
int openblas_get_parallel(void);
char* openblas_get_config(void);
char* openblas_get_corename(void);
}

namespace lintrain {

namespace {
std::atomic<uint64_t> g_gemm_flops{0};
}

uint64_t gemm_flops() { return g_gemm_flops.load(std::memory_order_relaxed); }

void gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
          const float* B, int ldb, float beta, float* C, int ldc) {
  LT_CHECK(M >= 0 && N >= 0 && K >= 0, "[gemm] negative size M=", M, " N=", N, " K=", K);
  if (M == 0 || N == 0) return;
  g_gemm_flops.fetch_add(2ull * M * N * K, std::memory_order_relaxed);
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
              M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

namespace {
int g_threads = 0;

void flush_denormals_on_this_thread() {
#if defined(__SSE2__)
  _MM_SET_FLUSH_ZERO_MODE(_MM_FLUSH_ZERO_ON);
  _MM_SET_DENORMALS_ZERO_MODE(_MM_DENORMALS_ZERO_ON);
#endif
}
}  // namespace

void set_num_threads(int n) {
  if (n <= 0) {
    // 0 = OMP_NUM_THREADS when the launcher (or the user) set it, else every core.
    const char* env = std::getenv("OMP_NUM_THREADS");
    n = env && std::atoi(env) > 0 ? std::atoi(env) : omp_get_num_procs();
  }
  g_threads = n;
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
  flush_denormals_on_this_thread();
#pragma omp parallel num_threads(n)
  flush_denormals_on_this_thread();
}

int num_threads() { return g_threads > 0 ? g_threads : omp_get_max_threads(); }

const char* blas_description() {
  static std::string desc;
  if (desc.empty()) {
    const int par = openblas_get_parallel();
    desc = std::string(openblas_get_config()) +
           (par == 2 ? " [OpenMP]" : par == 1 ? " [pthreads]" : " [single-threaded]");
  }
  return desc.c_str();
}

}  // namespace lintrain

namespace lintrain {

void select_blas_kernels(int argc, char** argv) {
  (void)argc;
  if (std::getenv("OPENBLAS_CORETYPE")) return;  // chosen by the user (or by us already)
  std::string core = openblas_get_corename();
  for (auto& c : core) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const bool generic = core == "prescott" || core == "core2" || core == "penryn" ||
                       core == "dunnington" || core == "nehalem" || core == "atom" ||
                       core == "unknown" || core == "katmai" || core == "northwood";
  if (!generic) return;
  const char* better = nullptr;
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")) {
    better = "SkylakeX";
  } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    better = "Haswell";
  }
  if (!better) return;
  setenv("OPENBLAS_CORETYPE", better, 1);
  execv("/proc/self/exe", argv);  // returns only on failure: keep the slow kernels
}

}  // namespace lintrain
