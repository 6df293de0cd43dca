// CUDA device memory for Storage (see runtime/device.h). Allocation zero-fills
// so device tensors start in the same state as host ones.
#include "runtime/cuda/check.h"
#include "runtime/device.h"

namespace lintrain {

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky "no device" error
    return 0;
  }
  return n;
}

bool cuda_available() { return cuda_device_count() > 0; }

void* cuda_malloc_zeroed(size_t nbytes) {
  void* p = nullptr;
  if (nbytes == 0) return nullptr;
  LT_CUDA_CHECK(cudaMalloc(&p, nbytes));
  LT_CUDA_CHECK(cudaMemset(p, 0, nbytes));
  return p;
}

void cuda_free(void* p) noexcept {
  if (p) (void)cudaFree(p);  // a destructor path: never throws
}

void cuda_copy_to_device(void* dst, const void* src, size_t nbytes) {
  LT_CUDA_CHECK(cudaMemcpy(dst, src, nbytes, cudaMemcpyHostToDevice));
}

void cuda_copy_to_host(void* dst, const void* src, size_t nbytes) {
  LT_CUDA_CHECK(cudaMemcpy(dst, src, nbytes, cudaMemcpyDeviceToHost));
}

void cuda_memset_zero(void* dst, size_t nbytes) { LT_CUDA_CHECK(cudaMemset(dst, 0, nbytes)); }

}  // namespace lintrain
