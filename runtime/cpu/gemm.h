// Row-major single-precision GEMM on the host through CBLAS (OpenBLAS):
//   C (M, N) = alpha * op(A) (M, K) @ op(B) (K, N) + beta * C
// op(X) = X or X^T. lda/ldb/ldc are row strides in elements of the stored
// (untransposed) matrices, so a head's slice of a [T, H*d] activation is passed
// as a pointer plus ld = H*d. Inside an OpenMP parallel region OpenBLAS (its
// OpenMP build) runs single-threaded; outside it uses every thread we set.
#pragma once

#include <cstdint>

namespace lintrain {

void gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
          const float* B, int ldb, float beta, float* C, int ldc);

// Floating-point operations (2*M*N*K per call) issued through gemm() since
// start: the trainer and benchmarks report achieved matmul GFLOP/s from it.
uint64_t gemm_flops();

// Number of threads for our OpenMP kernels and for BLAS (0 = OMP_NUM_THREADS if
// set, else all cores). It also turns on flush-to-zero / denormals-are-zero on
// the calling thread and every OpenMP thread: decay powers lambda^n of fast
// heads reach denormal floats, which cost ~100x per operation on x86 and made
// the LASP-2 boundary terms 4x slower (bench/RESULTS.md); values below 1e-38
// carry nothing a model can use. The
// training CLI sets it once from the cores the rank was given.
void set_num_threads(int n);
int num_threads();
// "OpenBLAS 0.3.21 (OpenMP)"-style description for the startup log.
const char* blas_description();

// OpenBLAS picks its kernels from the CPU model when it is loaded. Under some
// hypervisors the model is hidden and it falls back to its generic SSE3
// ("Prescott") kernels, several times slower than the AVX2/AVX-512 ones the CPU
// really has. Call first thing in main(): when the detected core is such a
// fallback and OPENBLAS_CORETYPE is unset, this sets OPENBLAS_CORETYPE from the
// CPU's feature flags and re-executes the program (argv unchanged) so OpenBLAS
// loads with the right kernels. Otherwise it returns and does nothing.
void select_blas_kernels(int argc, char** argv);

}  // namespace lintrain
