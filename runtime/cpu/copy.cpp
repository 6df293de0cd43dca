#include "runtime/cpu/copy.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

namespace lintrain {
namespace {
// Below this a copy is too short for the thread start-up to pay off.
constexpr size_t kParallelBytes = size_t{1} << 20;
}  // namespace

void parallel_copy(void* dst, const void* src, size_t nbytes) {
  if (nbytes < kParallelBytes || omp_get_max_threads() == 1) {
    std::memcpy(dst, src, nbytes);
    return;
  }
  char* d = static_cast<char*>(dst);
  const char* s = static_cast<const char*>(src);
#pragma omp parallel
  {
    const size_t nt = static_cast<size_t>(omp_get_num_threads()), t = static_cast<size_t>(omp_get_thread_num());
    // Slices on 4 KiB boundaries so no two threads write one page.
    const size_t slice = (nbytes / nt + 4095) & ~size_t{4095};
    const size_t begin = std::min(nbytes, t * slice), end = std::min(nbytes, begin + slice);
    if (end > begin) std::memcpy(d + begin, s + begin, end - begin);
  }
}

bool copy_checking_finite(float* dst, const float* src, int64_t n, int64_t* first_bad) {
  int64_t bad = n;
#pragma omp parallel for schedule(static) reduction(min : bad) if (n >= (int64_t{1} << 18))
  for (int64_t i = 0; i < n; ++i) {
    const float v = src[i];
    dst[i] = v;
    // v - v is 0 for finite v and NaN for NaN and infinities.
    if (v - v != 0.0f && i < bad) bad = i;
  }
  if (first_bad) *first_bad = bad < n ? bad : -1;
  return bad == n;
}

int64_t find_non_finite(const float* p, int64_t n) {
  int64_t bad = n;
#pragma omp parallel for schedule(static) reduction(min : bad) if (n >= (int64_t{1} << 18))
  for (int64_t i = 0; i < n; ++i)
    if (p[i] - p[i] != 0.0f && i < bad) bad = i;
  return bad < n ? bad : -1;
}

}  // namespace lintrain
