// Bulk host copies and finiteness checks for checkpoint staging, restore and
// weight export. parallel_copy and find_non_finite run on every OpenMP
// thread (one thread reaches about half of a socket's memory bandwidth).
#pragma once

#include <cstddef>
#include <cstdint>

namespace lintrain {

// dst[0, nbytes) = src[0, nbytes); the ranges must not overlap.
void parallel_copy(void* dst, const void* src, size_t nbytes);

// dst[0, n) = src[0, n) for floats, and whether every value was finite. When
// one was not, *first_bad (if given) is the lowest index of a NaN or infinity.
// On the calling thread alone: checkpoint staging runs it in the background
// beside training, whose cores a second team of OpenMP threads (spinning
// while they wait) would fight for. At memory speed: the check reads the
// block just copied, from cache.
bool copy_checking_finite(float* dst, const float* src, int64_t n, int64_t* first_bad = nullptr);

// The lowest index of a NaN or infinity in p[0, n), or -1 when all are finite.
int64_t find_non_finite(const float* p, int64_t n);

}  // namespace lintrain
