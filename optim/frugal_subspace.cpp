#include "optim/frugal_subspace.h"

#include <lapacke.h>

#include <algorithm>
#include <cstring>
#include <numeric>

#include "runtime/error.h"

namespace lintrain::frugal_subspace {

// A row-major (m, n) matrix is the column-major (n, m) matrix G^T, so LAPACK
// reads our buffer as it is: the left singular vectors of G^T are the right
// ones of G and vice versa. Only the side we need is computed (gesvd, not
// gesdd, which always forms both).

void top_right_singular_vectors(const float* G, int m, int n, int r, float* V, const char* what) {
  LT_CHECK(r >= 1 && r <= std::min(m, n), "[frugal svd] rank ", r, " outside [1, min(", m, ", ", n, ")]");
  const int k = std::min(m, n);
  std::vector<float> a(G, G + static_cast<size_t>(m) * n), s(k), u(static_cast<size_t>(n) * k),
      superb(std::max(1, k - 1));
  float vt_unused = 0;
  const lapack_int info = LAPACKE_sgesvd(LAPACK_COL_MAJOR, 'S', 'N', n, m, a.data(), n, s.data(), u.data(), n,
                                         &vt_unused, 1, superb.data());
  if (info != 0)
    throw Error(str_cat("[frugal svd] LAPACK sgesvd failed (info ", info, ") on the gradient of ", what, " (", m,
                        ", ", n, "); is the gradient finite?"));
  // Column j of u (length n, stride n) is the j-th right singular vector of G.
  std::memcpy(V, u.data(), sizeof(float) * static_cast<size_t>(r) * n);
}

void top_left_singular_vectors(const float* G, int m, int n, int r, float* Ut, const char* what) {
  LT_CHECK(r >= 1 && r <= std::min(m, n), "[frugal svd] rank ", r, " outside [1, min(", m, ", ", n, ")]");
  const int k = std::min(m, n);
  std::vector<float> a(G, G + static_cast<size_t>(m) * n), s(k), vt(static_cast<size_t>(k) * m),
      superb(std::max(1, k - 1));
  float u_unused = 0;
  const lapack_int info = LAPACKE_sgesvd(LAPACK_COL_MAJOR, 'N', 'S', n, m, a.data(), n, s.data(), &u_unused, 1,
                                         vt.data(), k, superb.data());
  if (info != 0)
    throw Error(str_cat("[frugal svd] LAPACK sgesvd failed (info ", info, ") on the gradient of ", what, " (", m,
                        ", ", n, "); is the gradient finite?"));
  // Row j of vt (k, m) column-major is the j-th left singular vector of G.
  for (int j = 0; j < r; ++j)
    for (int i = 0; i < m; ++i) Ut[static_cast<size_t>(j) * m + i] = vt[j + static_cast<size_t>(i) * k];
}

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
