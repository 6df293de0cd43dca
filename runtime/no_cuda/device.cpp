// Linked into CPU-only builds in place of runtime/cuda: every entry point
// that needs a GPU throws a clear error instead of failing to link.
#include "runtime/device.h"

#include "runtime/error.h"

namespace lintrain {

namespace {
[[noreturn]] void no_cuda(const char* op) {
  throw Error(str_cat("[", op, "] this lintrain was built without CUDA; rebuild with "
                      "-DLINTRAIN_CUDA=ON on a machine with the CUDA toolkit"));
}
}  // namespace

bool cuda_available() { return false; }
int cuda_device_count() { return 0; }
void cuda_use_device(int) { no_cuda("cuda_use_device"); }
int cuda_current_device() { return -1; }
std::string cuda_device_description(int) { no_cuda("cuda_device_description"); }
void* cuda_malloc_zeroed(size_t) { no_cuda("cuda_malloc"); }
void cuda_free(void*) noexcept {}
void cuda_copy_to_device(void*, const void*, size_t) { no_cuda("cuda_copy_to_device"); }
void cuda_copy_to_host(void*, const void*, size_t) { no_cuda("cuda_copy_to_host"); }
void cuda_memset_zero(void*, size_t) { no_cuda("cuda_memset_zero"); }

}  // namespace lintrain
