// The random subspace draws of FRUGAL (optim/frugal.h), apart from the update
// rule: a Haar-random orthonormal basis (Gaussian matrix + QR) and a random
// subset of indices. (Its SVD subspace is GaLore's projector.) Each returns its
// r basis vectors as the ROWS of a row-major (r, d) matrix; frugal.cpp lays
// them out for its side of the matrix.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/rng.h"

namespace lintrain::frugal_subspace {

// r orthonormal vectors of length d as rows of Q^T (r, d): the Q of the QR
// factorisation of a (d, r) standard-normal matrix, with the signs that make
// diag(R) positive, so the span is uniform over r-dim subspaces (what
// torch.nn.init.orthogonal_ draws). Consumes d*r normals of rng.
void random_orthonormal_rows(Rng& rng, int d, int r, float* Qt);

// r distinct indices of [0, n), uniform, sorted ascending (partial
// Fisher-Yates with Rng::below).
std::vector<int> random_sorted_subset(Rng& rng, int n, int r);

// A uniform permutation of [0, n) (Fisher-Yates with Rng::below).
std::vector<int> random_permutation(Rng& rng, int n);

}  // namespace lintrain::frugal_subspace
