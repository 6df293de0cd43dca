#include "runtime/cpu/linalg.h"

#include <lapacke.h>

#include <algorithm>
#include <cmath>

#include "runtime/error.h"

namespace lintrain {

namespace {
// LAPACK reports workspace sizes as a float; round up so a size above 2^24
// that the float rounded down still fits.
size_t lwork_from(float query) { return static_cast<size_t>(std::ceil(static_cast<double>(query) * (1 + 1e-6))) + 1; }
}  // namespace


void LapackWorkspace::reserve_svd(int a, int b) {
  LT_CHECK(a >= 1 && a <= b, "[svd] left_singular_vectors needs 1 <= rows <= cols, got (", a, ", ", b, ")");
  // Row-major A (a, b) is the column-major (b, a) matrix A^T; see left_singular_vectors.
  float query = 0, dummy = 0;
  const lapack_int info = LAPACKE_sgesdd_work(LAPACK_COL_MAJOR, 'O', b, a, &dummy, b, &dummy, &dummy, 1, &dummy,
                                              a, &query, -1, nullptr);
  LT_CHECK(info == 0, "[svd] sgesdd workspace query for (", a, ", ", b, ") failed: info=", info);
  work_.resize(std::max(work_.size(), lwork_from(query)));
  iwork_.resize(std::max(iwork_.size(), static_cast<size_t>(8 * a)));
  sigma_.resize(std::max(sigma_.size(), static_cast<size_t>(a)));
}

void LapackWorkspace::left_singular_vectors(float* A, int a, int b, float* U, float* sigma) {
  reserve_svd(a, b);  // a no-op when reserved beforehand, apart from the size query
  if (!sigma) sigma = sigma_.data();
  // LAPACK sees A^T (b, a), b >= a. With jobz 'O' it overwrites the array with
  // A^T's left singular vectors and writes its right ones as VT (a, a),
  // column-major: VT[j + i*a] = v_j(i). A^T's right singular vectors are A's
  // left ones, so read row-major that array is U with U[i][j] = u_j(i).
  float dummy_u = 0;
  const lapack_int info =
      LAPACKE_sgesdd_work(LAPACK_COL_MAJOR, 'O', b, a, A, b, sigma, &dummy_u, 1, U, a, work_.data(),
                          static_cast<lapack_int>(work_.size()), iwork_.data());
  if (info == -4)  // sgesdd's check of the matrix norm
    throw Error(str_cat("[svd] the (", a, ", ", b, ") matrix has NaN or Inf entries; sgesdd cannot factor it"));
  LT_CHECK(info == 0, "[svd] sgesdd on a (", a, ", ", b, ") matrix failed: info=", info,
           info > 0 ? " (the bidiagonal SVD did not converge)" : " (bad argument)");
}

void LapackWorkspace::reserve_qr(int k, int n) {
  LT_CHECK(k >= 1 && k <= n, "[qr] orthonormalize_rows needs 1 <= rows <= cols, got (", k, ", ", n, ")");
  float q1 = 0, q2 = 0, dummy = 0;
  lapack_int info = LAPACKE_sgeqrf_work(LAPACK_COL_MAJOR, n, k, &dummy, n, &dummy, &q1, -1);
  LT_CHECK(info == 0, "[qr] sgeqrf workspace query for (", k, ", ", n, ") failed: info=", info);
  info = LAPACKE_sorgqr_work(LAPACK_COL_MAJOR, n, k, k, &dummy, n, &dummy, &q2, -1);
  LT_CHECK(info == 0, "[qr] sorgqr workspace query for (", k, ", ", n, ") failed: info=", info);
  work_.resize(std::max({work_.size(), lwork_from(q1), lwork_from(q2)}));
  tau_.resize(std::max(tau_.size(), static_cast<size_t>(k)));
}

void LapackWorkspace::orthonormalize_rows(float* X, int k, int n) {
  reserve_qr(k, n);
  // Row-major X (k, n) is the column-major (n, k) matrix whose columns are X's rows.
  const lapack_int lwork = static_cast<lapack_int>(work_.size());
  lapack_int info = LAPACKE_sgeqrf_work(LAPACK_COL_MAJOR, n, k, X, n, tau_.data(), work_.data(), lwork);
  LT_CHECK(info == 0, "[qr] sgeqrf on a (", k, ", ", n, ") matrix failed: info=", info);
  info = LAPACKE_sorgqr_work(LAPACK_COL_MAJOR, n, k, k, X, n, tau_.data(), work_.data(), lwork);
  LT_CHECK(info == 0, "[qr] sorgqr on a (", k, ", ", n, ") matrix failed: info=", info);
}

}  // namespace lintrain
