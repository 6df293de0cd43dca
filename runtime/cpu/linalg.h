// Dense factorizations on the host through LAPACKE (the LAPACK of OpenBLAS):
// the singular vectors and orthonormal bases that subspace optimizers (GaLore)
// build their projectors from.
//
// Matrices are row-major like everywhere else in lintrain; LAPACK is
// column-major, and the functions below are phrased so that a row-major
// matrix is handed to LAPACK as its column-major transpose without a copy.
// All workspace lives in a LapackWorkspace sized once for the largest problem
// (reserve_*), so a refresh on the training path never allocates.
// LAPACKE is a required dependency (CMake stops without it).
#pragma once

#include <cstdint>
#include <vector>

namespace lintrain {

class LapackWorkspace {
 public:
  // Grow the workspace so left_singular_vectors(a, b) / orthonormalize_rows(k, n)
  // run without allocating. Each call asks LAPACK for its workspace size.
  void reserve_svd(int a, int b);
  void reserve_qr(int k, int n);

  // All left singular vectors of A (a, b), a <= b, row-major, by descending
  // singular value (LAPACK sgesdd, divide and conquer):
  //   A = U diag(sigma) V^T,  U (a, a) row-major: column j is u_j.
  // A is overwritten. sigma (a) may be null. Throws lintrain::Error when
  // LAPACK fails (NaN/Inf in A, no convergence), naming the shape.
  void left_singular_vectors(float* A, int a, int b, float* U, float* sigma);

  // Replaces the k rows of X (k, n), k <= n, row-major, by an orthonormal basis
  // of their span (Householder QR: sgeqrf + sorgqr; the rows are the columns of
  // Q of the column-major n x k matrix X^T).
  void orthonormalize_rows(float* X, int k, int n);

 private:
  std::vector<float> work_;
  std::vector<float> sigma_;  // when the caller does not want them
  std::vector<float> tau_;
  std::vector<int> iwork_;
};

}  // namespace lintrain
