// CUDA device memory for Storage (see runtime/device.h). Allocation zero-fills
// so device tensors start in the same state as host ones.
#include <atomic>
#include <cstdio>

#include "runtime/cuda/check.h"
#include "runtime/device.h"
#include "runtime/error.h"

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

namespace {
std::atomic<int> g_device{-1};     // the process's GPU (cuda_use_device), -1 = CUDA's default
thread_local int t_device = -1;    // what this thread last made current

// Makes the process's GPU current on this thread (a checkpoint writer or a
// communication thread starts on device 0 otherwise).
void on_process_device() {
  const int d = g_device.load(std::memory_order_relaxed);
  if (d >= 0 && t_device != d) {
    LT_CUDA_CHECK(cudaSetDevice(d));
    t_device = d;
  }
}
}  // namespace

void cuda_use_device(int index) {
  const int n = cuda_device_count();
  if (index < 0 || index >= n)
    throw Error(str_cat("[cuda] GPU ", index, " does not exist: this process sees ", n, " GPU(s)",
                        n == 0 ? " (check CUDA_VISIBLE_DEVICES and the driver with nvidia-smi)" : ""));
  g_device = index;
  t_device = -1;
  on_process_device();
}

int cuda_current_device() { return g_device.load(); }

std::string cuda_device_description(int index) {
  cudaDeviceProp p{};
  LT_CUDA_CHECK(cudaGetDeviceProperties(&p, index));
  char buf[256];
  std::snprintf(buf, sizeof buf, "%s (sm_%d%d, %.1f GiB)", p.name, p.major, p.minor,
                static_cast<double>(p.totalGlobalMem) / (1024.0 * 1024.0 * 1024.0));
  return buf;
}

void* cuda_malloc_zeroed(size_t nbytes) {
  void* p = nullptr;
  if (nbytes == 0) return nullptr;
  on_process_device();
  LT_CUDA_CHECK(cudaMalloc(&p, nbytes));
  LT_CUDA_CHECK(cudaMemset(p, 0, nbytes));
  return p;
}

void cuda_free(void* p) noexcept {
  if (p) (void)cudaFree(p);  // a destructor path: never throws
}

void cuda_copy_to_device(void* dst, const void* src, size_t nbytes) {
  on_process_device();
  LT_CUDA_CHECK(cudaMemcpy(dst, src, nbytes, cudaMemcpyHostToDevice));
}

void cuda_copy_to_host(void* dst, const void* src, size_t nbytes) {
  on_process_device();
  LT_CUDA_CHECK(cudaMemcpy(dst, src, nbytes, cudaMemcpyDeviceToHost));
}

void cuda_memset_zero(void* dst, size_t nbytes) {
  on_process_device();
  LT_CUDA_CHECK(cudaMemset(dst, 0, nbytes));
}

}  // namespace lintrain
