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
  if (nbytes == 0) return;  // memcpy with a null pointer is undefined even for 0 bytes
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
  constexpr int64_t kBlock = 16384;  // 64 KiB: copied, then checked while in L2
  for (int64_t b = 0; b < n; b += kBlock) {
    const int64_t m = std::min(kBlock, n - b);
    std::memcpy(dst + b, src + b, static_cast<size_t>(m) * sizeof(float));
    // All exponent bits set = infinity or NaN; an OR over integer tests vectorizes.
    auto non_finite = [&](int64_t i) {
      uint32_t u;
      std::memcpy(&u, dst + b + i, sizeof u);
      return (u & 0x7f800000u) == 0x7f800000u;
    };
    uint32_t any = 0;
    for (int64_t i = 0; i < m; ++i) any |= non_finite(i);
    if (any) {
      int64_t i = 0;
      while (!non_finite(i)) ++i;
      if (first_bad) *first_bad = b + i;
      return false;
    }
  }
  if (first_bad) *first_bad = -1;
  return true;
}

int64_t find_non_finite(const float* p, int64_t n) {
  int64_t bad = n;
#pragma omp parallel for schedule(static) reduction(min : bad) if (n >= (int64_t{1} << 18))
  for (int64_t i = 0; i < n; ++i)
    if (p[i] - p[i] != 0.0f && i < bad) bad = i;
  return bad < n ? bad : -1;
}

}  // namespace lintrain
