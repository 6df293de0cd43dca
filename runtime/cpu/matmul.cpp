// Matrix multiply on the CPU (the op: runtime/ops.h): OpenBLAS through gemm().
#include "runtime/backend.h"
#include "runtime/cpu/gemm.h"

namespace lintrain::cpu {

void matmul(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
            int ldb, float beta, float* C, int ldc) {
  gemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

}  // namespace lintrain::cpu
