// Matrix multiply on CUDA (the op: runtime/ops.h) through cuBLAS, FP32 math.
// cuBLAS is column-major; a row-major matrix with row stride ld is the
// column-major transpose with leading dimension ld, so the row-major
// C = op(A) op(B) is computed as the column-major C^T = op(B)^T op(A)^T.
#include <cublas_v2.h>
#include <cuda_runtime.h>

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

}  // namespace

void matmul(void* stream, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
            const float* B, int ldb, float beta, float* C, int ldc) {
  cublasHandle_t h = handle_for_this_thread();
  LT_CUBLAS_CHECK(cublasSetStream(h, static_cast<cudaStream_t>(stream)));
  LT_CUBLAS_CHECK(cublasSgemm(h, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K,
                              &alpha, B, ldb, A, lda, &beta, C, ldc));
}

}  // namespace lintrain::cuda
