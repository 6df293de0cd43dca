#include "optim/galore_projector.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "runtime/cpu/gemm.h"
#include "runtime/error.h"

namespace lintrain {

int galore_rank(const GaloreConfig& cfg, int64_t m, int64_t n) {
  return static_cast<int>(std::min<int64_t>({static_cast<int64_t>(cfg.rank), m, n}));
}

namespace {

template <typename T>
void grow(std::vector<T>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
}

// Flips x[0], x[stride], ..., x[(len-1)*stride] so that its largest-magnitude
// entry (the first one on a tie) is positive.
void canonical_sign(float* x, int len, int64_t stride) {
  int best = 0;
  for (int i = 1; i < len; ++i)
    if (std::fabs(x[i * stride]) > std::fabs(x[best * stride])) best = i;
  if (x[best * stride] < 0)
    for (int i = 0; i < len; ++i) x[i * stride] = -x[i * stride];
}

}  // namespace

GaloreProjector::GaloreProjector(const GaloreConfig& cfg)
    : randomized_(cfg.svd == "randomized"), oversample_(cfg.svd_oversample), power_iters_(cfg.svd_power_iters) {
  LT_CHECK(cfg.svd == "exact" || cfg.svd == "randomized", "[galore] optim.galore.svd must be exact or randomized, got '",
           cfg.svd, "'");
}

int GaloreProjector::sketch_width(int m, int n, int r) const {
  return static_cast<int>(std::min<int64_t>(int64_t{r} + oversample_, std::min(m, n)));  // no int overflow
}

void GaloreProjector::reserve(int m, int n, int r) {
  const int s = std::min(m, n), L = std::max(m, n);
  if (randomized_) {
    const int k = sketch_width(m, n, r);
    grow(wide_, int64_t{k} * L);
    grow(basis_, int64_t{k} * s);
    grow(small_u_, int64_t{k} * k);
    lapack_.reserve_qr(k, s);
    lapack_.reserve_qr(k, L);
    lapack_.reserve_svd(k, L);
  } else {
    grow(svd_in_, int64_t{s} * L);
    grow(svd_u_, int64_t{s} * s);
    lapack_.reserve_svd(s, L);
  }
}

void GaloreProjector::compute(const float* G, int m, int n, int r, float* P, Rng& rng) {
  LT_CHECK(r >= 1 && r <= std::min(m, n), "[galore] projector rank ", r, " outside [1, ", std::min(m, n),
           "] for a (", m, ", ", n, ") gradient");
  reserve(m, n, r);  // no-op after the optimizer's reserve
  if (randomized_) randomized_basis(G, m, n, r, P, rng);
  else exact_basis(G, m, n, r, P);
  // One vector per column of P (m, r) when projecting from the left, per row of P (r, n) otherwise.
  const bool left = galore_projects_left(m, n);
  for (int j = 0; j < r; ++j) {
    if (left) canonical_sign(P + j, m, r);
    else canonical_sign(P + int64_t{j} * n, n, 1);
  }
}

// A = G (left) or G^T (right) is (s, L); LAPACK gives its left singular
// vectors U (s, s), and P is U's first r columns (left) or their transpose.
void GaloreProjector::exact_basis(const float* G, int m, int n, int r, float* P) {
  const int s = std::min(m, n), L = std::max(m, n);
  float* A = svd_in_.data();
  if (galore_projects_left(m, n)) {
    std::memcpy(A, G, sizeof(float) * static_cast<size_t>(m) * n);
  } else {
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < n; ++j) A[int64_t{j} * L + i] = G[int64_t{i} * n + j];
  }
  float* U = svd_u_.data();
  lapack_.left_singular_vectors(A, s, L, U, nullptr);
  if (galore_projects_left(m, n)) {
    for (int i = 0; i < m; ++i) std::memcpy(P + int64_t{i} * r, U + int64_t{i} * s, sizeof(float) * r);
  } else {
    for (int j = 0; j < r; ++j)
      for (int i = 0; i < n; ++i) P[int64_t{j} * n + i] = U[int64_t{i} * s + j];
  }
}

// Subspace iteration on A (s, L) = G (left) or G^T (right) without forming A:
// every product reads G with the matching transpose flag. Iterates are kept
// transposed, (k, s) and (k, L), so that their rows are the columns LAPACK's
// QR orthonormalises.
void GaloreProjector::randomized_basis(const float* G, int m, int n, int r, float* P, Rng& rng) {
  const int s = std::min(m, n), L = std::max(m, n), k = sketch_width(m, n, r);
  const bool left = galore_projects_left(m, n);
  const bool trans_a = !left;  // A = op(G)
  float* W = wide_.data();     // (k, L)
  float* Qt = basis_.data();   // (k, s)

  // Omega^T (k, L) Gaussian; Y^T = Omega^T A^T (k, s); Q^T = orth(Y^T).
  for (int64_t i = 0; i < int64_t{k} * L; ++i) W[i] = static_cast<float>(rng.normal());
  gemm(false, !trans_a, k, s, L, 1.0f, W, L, G, n, 0.0f, Qt, s);
  lapack_.orthonormalize_rows(Qt, k, s);
  for (int it = 0; it < power_iters_; ++it) {
    gemm(false, trans_a, k, L, s, 1.0f, Qt, s, G, n, 0.0f, W, L);  // Z^T = Q^T A  (k, L)
    lapack_.orthonormalize_rows(W, k, L);
    gemm(false, !trans_a, k, s, L, 1.0f, W, L, G, n, 0.0f, Qt, s);  // Y^T = Z^T A^T  (k, s)
    lapack_.orthonormalize_rows(Qt, k, s);
  }
  // B = Q^T A (k, L) = Ub diag(sigma) Vb^T; A's top singular vectors ~ Q Ub.
  gemm(false, trans_a, k, L, s, 1.0f, Qt, s, G, n, 0.0f, W, L);
  float* Ub = small_u_.data();
  lapack_.left_singular_vectors(W, k, L, Ub, nullptr);
  if (left) gemm(true, false, s, r, k, 1.0f, Qt, s, Ub, k, 0.0f, P, r);  // P = Q Ub[:, :r]  (m, r)
  else gemm(true, false, r, s, k, 1.0f, Ub, k, Qt, s, 0.0f, P, s);       // P = Ub[:, :r]^T Q^T  (r, n)
}

}  // namespace lintrain
