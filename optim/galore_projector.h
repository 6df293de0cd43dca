// GaLore's projector: the top-r singular vectors of a gradient on its smaller
// side, from which GaLore builds its rank-r gradient subspace (optim/galore.h).
//
// For a gradient G (m, n) (weights are [out, in]) and r = min(rank, m, n):
//   m >= n: P (r, n), its rows the top-r RIGHT singular vectors of G (rows of Vh)
//   m <  n: P (m, r), its columns the top-r LEFT singular vectors of G (columns of U)
// as in the official galore_projector.py (proj_type "std").
//
// Two ways to get them:
//   exact       LAPACK sgesdd on G (float32, as the official torch.linalg.svd on
//               a float32 gradient): O(m n min(m, n)).
//   randomized  subspace iteration (Halko, Martinsson & Tropp 2011, Alg. 4.4):
//               a Gaussian sketch with k = min(r + oversample, min(m, n)) columns
//               drawn from the caller's Rng, `power_iters` rounds of multiplying
//               by G^T and G with a QR re-orthonormalisation after each, then
//               the SVD of the small (k, max(m, n)) projection: O(m n k).
//
// Signs. A singular vector is defined up to its sign, and LAPACK builds differ
// in the sign they return. The sign does not cancel in GaLore: the moments are
// kept across a refresh, in the coordinates of the old projector. So every
// vector is flipped to make its largest-magnitude entry positive (the first
// one on a tie), which makes P a function of G alone: the same for any LAPACK,
// and the same for the exact and randomized SVD when they find the same
// subspace.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/config/config.h"
#include "runtime/cpu/linalg.h"
#include "runtime/rng.h"

namespace lintrain {

// r = min(rank, m, n).
int galore_rank(const GaloreConfig& cfg, int64_t m, int64_t n);
// Whether an (m, n) gradient is projected from the left (P (m, r)): m < n.
inline bool galore_projects_left(int64_t m, int64_t n) { return m < n; }

class GaloreProjector {
 public:
  explicit GaloreProjector(const GaloreConfig& cfg);

  // Grows the scratch for (m, n) gradients at rank r. Call once per shape
  // before training; compute() on a reserved shape does not allocate.
  void reserve(int m, int n, int r);

  // Writes the projector of G (m, n) to P ((r, n) or (m, r), see above).
  // `rng` draws the randomized sketch; the exact SVD leaves it untouched.
  void compute(const float* G, int m, int n, int r, float* P, Rng& rng);

 private:
  void exact_basis(const float* G, int m, int n, int r, float* P);
  void randomized_basis(const float* G, int m, int n, int r, float* P, Rng& rng);
  int sketch_width(int m, int n, int r) const;

  bool randomized_;
  int oversample_;
  int power_iters_;
  LapackWorkspace lapack_;
  // Exact: the matrix LAPACK factors (its smaller side first) and its U.
  std::vector<float> svd_in_;    // (s, L), s = min(m, n), L = max(m, n)
  std::vector<float> svd_u_;     // (s, s)
  // Randomized: k = sketch_width().
  std::vector<float> wide_;      // (k, L): the sketch, then G-side iterates, then the projection B
  std::vector<float> basis_;     // (k, s): Q^T, rows an orthonormal basis of the sketched range
  std::vector<float> small_u_;   // (k, k): left singular vectors of B
};

}  // namespace lintrain
