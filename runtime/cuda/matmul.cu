// Matrix multiply on CUDA (the ops: runtime/ops.h) through cuBLAS: FP32 math
// (matmul), or BF16 operands with FP32 accumulation on the tensor cores
// (matmul_bf16). cuBLAS is column-major; a row-major matrix with row stride
// ld is the column-major transpose with leading dimension ld, so the
// row-major C = op(A) op(B) is computed as the column-major
// C^T = op(B)^T op(A)^T.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>

#include "runtime/arena.h"
#include "runtime/backend.h"
#include "runtime/cuda/check.h"

namespace lintrain::cuda {

namespace {

// One handle per host thread and device (cuBLAS handles are not thread-safe),
// created on first use; the stream is set per call.
cublasHandle_t handle_for_this_thread() {
  thread_local cublasHandle_t handle = nullptr;
  thread_local int handle_device = -1;
  int device = 0;
  LT_CUDA_CHECK(cudaGetDevice(&device));
  if (handle == nullptr || handle_device != device) {
    if (handle != nullptr) (void)cublasDestroy(handle);
    handle = nullptr;
    LT_CUBLAS_CHECK(cublasCreate(&handle));
    LT_CUBLAS_CHECK(cublasSetMathMode(handle, CUBLAS_DEFAULT_MATH));  // FP32, no TF32
    handle_device = device;
  }
  return handle;
}

// dst (rows, cols) contiguous bf16 = src (rows, cols) at row stride ld. The
// values are bf16 already (the op's contract), so the cast is exact; it
// rounds to nearest even all the same.
__global__ void pack_bf16_kernel(__nv_bfloat16* dst, const float* src, int64_t rows, int64_t cols, int64_t ld) {
  const int64_t n = rows * cols;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / cols, c = i - r * cols;
    dst[i] = __float2bfloat16_rn(src[r * ld + c]);
  }
}

void pack_bf16(cudaStream_t stream, __nv_bfloat16* dst, const float* src, int64_t rows, int64_t cols, int64_t ld) {
  constexpr int kThreads = 256;
  const int64_t n = rows * cols;
  if (n == 0) return;
  const int blocks = static_cast<int>(std::min<int64_t>((n + kThreads - 1) / kThreads, 65535 * 8));
  LT_CUDA_CHECK_LAUNCH((pack_bf16_kernel<<<blocks, kThreads, 0, stream>>>(dst, src, rows, cols, ld)));
}

}  // namespace

size_t matmul_bf16_scratch_bytes(int M, int N, int K) {
  // A (M x K) and B (K x N) as contiguous bf16, each rounded up to the arena's alignment.
  return arena_round(sizeof(__nv_bfloat16) * static_cast<size_t>(M) * K) +
         arena_round(sizeof(__nv_bfloat16) * static_cast<size_t>(K) * N);
}

void matmul_bf16(void* stream, Arena& scratch, bool trans_a, bool trans_b, int M, int N, int K, float alpha,
                 const float* A, int lda, const float* B, int ldb, float beta, float* C, int ldc) {
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  ScratchScope scope(scratch);
  // The stored (untransposed) shapes: A is (M, K) or (K, M), B (K, N) or (N, K).
  const int a_rows = trans_a ? K : M, a_cols = trans_a ? M : K;
  const int b_rows = trans_b ? N : K, b_cols = trans_b ? K : N;
  auto* a16 = scope.take<__nv_bfloat16>(static_cast<size_t>(M) * K, "matmul_bf16");
  auto* b16 = scope.take<__nv_bfloat16>(static_cast<size_t>(K) * N, "matmul_bf16");
  pack_bf16(s, a16, A, a_rows, a_cols, lda);
  pack_bf16(s, b16, B, b_rows, b_cols, ldb);
  cublasHandle_t h = handle_for_this_thread();
  LT_CUBLAS_CHECK(cublasSetStream(h, s));
  LT_CUBLAS_CHECK(cublasGemmEx(h, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K,
                               &alpha, b16, CUDA_R_16BF, std::max(1, b_cols), a16, CUDA_R_16BF, std::max(1, a_cols),
                               &beta, C, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

void matmul(void* stream, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
            const float* B, int ldb, float beta, float* C, int ldc) {
  cublasHandle_t h = handle_for_this_thread();
  LT_CUBLAS_CHECK(cublasSetStream(h, static_cast<cudaStream_t>(stream)));
  LT_CUBLAS_CHECK(cublasSgemm(h, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K,
                              &alpha, B, ldb, A, lda, &beta, C, ldc));
}

}  // namespace lintrain::cuda
