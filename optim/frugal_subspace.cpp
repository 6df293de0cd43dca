#include "optim/frugal_subspace.h"

#include <lapacke.h>

#include <algorithm>
#include <cstring>
#include <numeric>

#include "runtime/error.h"

namespace lintrain::frugal_subspace {

void random_orthonormal_rows(Rng& rng, int d, int r, float* Qt) {
  LT_CHECK(r >= 1 && r <= d, "[frugal random] ", r, " orthonormal vectors of length ", d, " do not exist");
  // A (d, r) column-major: column j holds normals j*d .. j*d + d - 1.
  std::vector<double> a(static_cast<size_t>(d) * r), tau(r);
  for (double& x : a) x = rng.normal();
  lapack_int info = LAPACKE_dgeqrf(LAPACK_COL_MAJOR, d, r, a.data(), d, tau.data());
  LT_CHECK(info == 0, "[frugal random] LAPACK dgeqrf failed (info ", info, ")");
  std::vector<double> sign(r);
  for (int j = 0; j < r; ++j) sign[j] = a[j + static_cast<size_t>(j) * d] < 0 ? -1.0 : 1.0;
  info = LAPACKE_dorgqr(LAPACK_COL_MAJOR, d, r, r, a.data(), d, tau.data());
  LT_CHECK(info == 0, "[frugal random] LAPACK dorgqr failed (info ", info, ")");
  for (int j = 0; j < r; ++j)
    for (int i = 0; i < d; ++i)
      Qt[static_cast<size_t>(j) * d + i] = static_cast<float>(sign[j] * a[i + static_cast<size_t>(j) * d]);
}

std::vector<int> random_sorted_subset(Rng& rng, int n, int r) {
  LT_CHECK(r >= 0 && r <= n, "[frugal randk] cannot pick ", r, " of ", n, " indices");
  std::vector<int> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  for (int j = 0; j < r; ++j) std::swap(idx[j], idx[j + rng.below(static_cast<uint64_t>(n - j))]);
  idx.resize(r);
  std::sort(idx.begin(), idx.end());
  return idx;
}

std::vector<int> random_permutation(Rng& rng, int n) {
  std::vector<int> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  for (int j = 0; j + 1 < n; ++j) std::swap(idx[j], idx[j + rng.below(static_cast<uint64_t>(n - j))]);
  return idx;
}

}  // namespace lintrain::frugal_subspace
