// FRUGAL (optim/frugal.h) against an independent float64 reference of its
// formulas, for every proj_type and state-free rule, across several subspace
// changes; plus the subspaces themselves (orthonormal, top-r, distinct indices,
// the blockwise density rule), the gradient split, the moment reset, the state
// size and a bit-identical save/restore.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "optim/frugal.h"
#include "optim/param_groups.h"
#include "runtime/error.h"
#include "runtime/rng.h"
#include "optim_test_util.h"

using namespace lintrain;
using test::fill_normal;
using test::whole_group;

namespace {

using Vec = std::vector<double>;

// ---- float64 linear algebra for the reference ----------------------------------------

// Cyclic Jacobi eigen-decomposition of a symmetric (n, n) matrix: eigenvalues
// in w, eigenvectors as the columns of E (row-major).
void jacobi_eigen(Vec A, int n, Vec& w, Vec& E) {
  E.assign(static_cast<size_t>(n) * n, 0.0);
  for (int i = 0; i < n; ++i) E[i * n + i] = 1.0;
  for (int sweep = 0; sweep < 100; ++sweep) {
    double off = 0, diag = 0;
    for (int p = 0; p < n; ++p)
      for (int q = 0; q < n; ++q) (p == q ? diag : off) += A[p * n + q] * A[p * n + q];
    if (off <= 1e-30 * diag) break;
    for (int p = 0; p < n; ++p)
      for (int q = p + 1; q < n; ++q) {
        const double apq = A[p * n + q];
        if (apq == 0.0) continue;
        const double theta = (A[q * n + q] - A[p * n + p]) / (2 * apq);
        const double t = (theta >= 0 ? 1.0 : -1.0) / (std::fabs(theta) + std::sqrt(theta * theta + 1));
        const double c = 1 / std::sqrt(t * t + 1), s = t * c;
        for (int k = 0; k < n; ++k) {  // A J
          const double akp = A[k * n + p], akq = A[k * n + q];
          A[k * n + p] = c * akp - s * akq;
          A[k * n + q] = s * akp + c * akq;
        }
        for (int k = 0; k < n; ++k) {  // J^T A
          const double apk = A[p * n + k], aqk = A[q * n + k];
          A[p * n + k] = c * apk - s * aqk;
          A[q * n + k] = s * apk + c * aqk;
        }
        for (int k = 0; k < n; ++k) {
          const double ekp = E[k * n + p], ekq = E[k * n + q];
          E[k * n + p] = c * ekp - s * ekq;
          E[k * n + q] = s * ekp + c * ekq;
        }
      }
  }
  w.resize(n);
  for (int i = 0; i < n; ++i) w[i] = A[i * n + i];
}

// The top-r eigenvectors of the Gram matrix of G (m, n) on its smaller side,
// laid out as FRUGAL's projector: P (r, n) rows for m >= n (eig of G^T G),
// P (m, r) columns for m < n (eig of G G^T).
Vec top_singular_projector(const Vec& G, int m, int n, int r) {
  const bool right = m >= n;
  const int d = right ? n : m;
  Vec gram(static_cast<size_t>(d) * d, 0.0);
  for (int a = 0; a < d; ++a)
    for (int b = 0; b < d; ++b) {
      double s = 0;
      if (right)
        for (int i = 0; i < m; ++i) s += G[i * n + a] * G[i * n + b];
      else
        for (int c = 0; c < n; ++c) s += G[a * n + c] * G[b * n + c];
      gram[a * d + b] = s;
    }
  Vec w, E;
  jacobi_eigen(gram, d, w, E);
  std::vector<int> order(d);
  for (int i = 0; i < d; ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](int a, int b) { return w[a] > w[b]; });
  Vec P(static_cast<size_t>(r) * d);
  for (int j = 0; j < r; ++j)
    for (int a = 0; a < d; ++a) {
      const double e = E[a * d + order[j]];
      if (right) P[j * n + a] = e;
      else P[a * r + j] = e;
    }
  return P;
}

// coords(G) and lift(R) of the header, with a dense P.
Vec coords_of(const Vec& G, const Vec& P, int m, int n, int r) {
  Vec R(static_cast<size_t>(m >= n ? m * r : r * n), 0.0);
  if (m >= n) {
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < r; ++j)
        for (int c = 0; c < n; ++c) R[i * r + j] += G[i * n + c] * P[j * n + c];
  } else {
    for (int j = 0; j < r; ++j)
      for (int c = 0; c < n; ++c)
        for (int i = 0; i < m; ++i) R[j * n + c] += P[i * r + j] * G[i * n + c];
  }
  return R;
}

Vec lift_of(const Vec& R, const Vec& P, int m, int n, int r) {
  Vec F(static_cast<size_t>(m) * n, 0.0);
  for (int i = 0; i < m; ++i)
    for (int c = 0; c < n; ++c)
      for (int j = 0; j < r; ++j)
        F[i * n + c] += m >= n ? R[i * r + j] * P[j * n + c] : P[i * r + j] * R[j * n + c];
  return F;
}

// The projector of randk's indices: rows (m >= n) or columns (m < n) of the identity.
Vec selection_projector(const std::vector<int>& idx, int m, int n) {
  const int r = static_cast<int>(idx.size());
  Vec P(static_cast<size_t>(r) * (m >= n ? n : m), 0.0);
  for (int j = 0; j < r; ++j) {
    if (m >= n) P[j * n + idx[j]] = 1.0;
    else P[idx[j] * r + j] = 1.0;
  }
  return P;
}

// Python's round() (half to even), written out rather than by nearbyint.
int expected_rank(double density, int64_t m, int64_t n) {
  const double x = density * static_cast<double>(std::min(m, n));
  double r = std::floor(x);
  const double frac = x - r;
  if (frac > 0.5 || (frac == 0.5 && std::fmod(r, 2.0) != 0.0)) r += 1;
  return std::max(1, static_cast<int>(r));
}

// Orthonormal columns (d, k) from a Gaussian matrix by Gram-Schmidt (twice).
Vec orthonormal_columns(Rng& rng, int d, int k) {
  Vec Q(static_cast<size_t>(d) * k);
  for (double& x : Q) x = rng.normal();
  for (int pass = 0; pass < 2; ++pass)
    for (int j = 0; j < k; ++j) {
      for (int l = 0; l < j; ++l) {
        double dot = 0;
        for (int i = 0; i < d; ++i) dot += Q[i * k + j] * Q[i * k + l];
        for (int i = 0; i < d; ++i) Q[i * k + j] -= dot * Q[i * k + l];
      }
      double nrm = 0;
      for (int i = 0; i < d; ++i) nrm += Q[i * k + j] * Q[i * k + j];
      for (int i = 0; i < d; ++i) Q[i * k + j] /= std::sqrt(nrm);
    }
  return Q;
}

// A gradient with well separated singular values (3.5 down to 0.5 in equal
// steps), so its top-r subspace is well defined and float32 SVD finds it to ~1e-6.
void fill_gapped(Rng& rng, float* g, int m, int n) {
  const int k = std::min(m, n);
  const Vec U = orthonormal_columns(rng, m, k), V = orthonormal_columns(rng, n, k);
  for (int i = 0; i < m; ++i)
    for (int c = 0; c < n; ++c) {
      double s = 0;
      for (int j = 0; j < k; ++j) s += U[i * k + j] * (0.5 + 3.0 * (k - 1 - j) / k) * V[c * k + j];
      g[i * n + c] = static_cast<float>(s);
    }
}

const StateTensor& find_state(const std::vector<StateTensor>& st, const std::string& name) {
  for (const StateTensor& s : st)
    if (s.name == name) return s;
  throw Error("no state tensor " + name);
}

Vec to_vec(const float* x, int64_t n) { return Vec(x, x + n); }

// Matrices of both orientations; 12x6 (r = round(1.5) = 2), 10x14 (r =
// round(2.5) = 2: half to even), 16x16 (r = 4) at density 0.25.
ParamTable matrix_table() {
  ParamTable t;
  t.add("a", {12, 6});
  t.add("b", {10, 14});
  t.add("c", {16, 16});
  return t;
}

// Blockwise also takes 1-D tensors.
ParamTable block_table() {
  ParamTable t;
  t.add("a", {12, 6});
  t.add("b", {10, 14});
  t.add("c", {16, 16});
  t.add("norm", {7});
  t.add("d", {5, 3});
  return t;
}

OptimConfig frugal_config(const std::string& proj, const std::string& free) {
  OptimConfig c;
  c.name = "frugal";
  c.frugal.proj_type = proj;
  c.frugal.state_free = free;
  c.frugal.density = 0.25;
  c.frugal.update_gap = 4;
  c.frugal.inactive_lr_scale = 0.5;
  c.frugal.betas = {0.8, 0.95};  // not AdamW's: catches reading the wrong section
  c.frugal.eps = 1e-6;
  return c;
}

double state_free_rule(const std::string& free, double x) {
  if (free == "signsgd") return static_cast<double>((x > 0) - (x < 0));
  if (free == "sgd") return x;
  return 0.0;
}

}  // namespace

// ---- the update against the float64 reference ----------------------------------------------

TEST(Frugal, MatchesFloat64ReferenceForEveryProjectionAndStateFreeRule) {
  const double wd = 0.1;
  const int kSteps = 10;  // update_gap 4: subspaces chosen at steps 1, 5 and 9
  for (const char* proj : {"svd", "random", "randk", "blockwise"})
    for (const char* free : {"signsgd", "sgd", "none"}) {
      SCOPED_TRACE(std::string(proj) + " / " + free);
      const OptimConfig cfg = frugal_config(proj, free);
      const bool blockwise = std::string(proj) == "blockwise";
      const ParamTable table = blockwise ? block_table() : matrix_table();
      Frugal opt(Context{}, cfg, whole_group(table, "frugal", wd), table, 42);
      FlatBuffer p(table), g(table);
      Rng rng(7);
      const size_t T = table.size();
      std::vector<Vec> W(T), M(T), V(T), P(T);
      std::vector<bool> active(T);
      for (size_t k = 0; k < T; ++k) {
        const TensorView& v = table.view(static_cast<int>(k));
        for (int64_t i = 0; i < v.numel; ++i) p.at(v)[i] = static_cast<float>(rng.normal());
        W[k] = to_vec(p.at(v), v.numel);
      }
      double max_err = 0;
      for (int t = 1; t <= kSteps; ++t) {
        const double lr = 1e-2 * (1.0 + 0.3 * std::sin(t));
        const bool change = (t - 1) % 4 == 0;
        for (size_t k = 0; k < T; ++k) {
          const TensorView& v = table.view(static_cast<int>(k));
          if (change && std::string(proj) == "svd")
            fill_gapped(rng, g.at(v), static_cast<int>(v.shape[0]), static_cast<int>(v.shape[1]));
          else
            for (int64_t i = 0; i < v.numel; ++i) g.at(v)[i] = static_cast<float>(rng.normal());
        }
        opt.step(p, g, lr);
        const std::vector<StateTensor> st = opt.state_tensors();
        const int s = (t - 1) % 4 + 1;  // steps in this subspace
        const double b1 = 0.8, b2 = 0.95, eps = 1e-6;
        const double bc1 = 1 - std::pow(b1, s), bc2 = 1 - std::pow(b2, s);
        for (size_t k = 0; k < T; ++k) {
          const TensorView& v = table.view(static_cast<int>(k));
          const Vec G = to_vec(g.at(v), v.numel);
          if (blockwise) {
            if (change) {
              active[k] = find_state(st, "active").data[k] != 0.0f;
              M[k].assign(v.numel, 0.0);
              V[k].assign(v.numel, 0.0);
            }
            for (int64_t i = 0; i < v.numel; ++i) {
              W[k][i] *= 1 - lr * wd;
              if (active[k]) {
                M[k][i] = b1 * M[k][i] + (1 - b1) * G[i];
                V[k][i] = b2 * V[k][i] + (1 - b2) * G[i] * G[i];
                W[k][i] -= lr * (M[k][i] / bc1) / (std::sqrt(V[k][i] / bc2) + eps);
              } else {
                W[k][i] -= lr * 0.5 * state_free_rule(free, G[i]);
              }
            }
          } else {
            const int m = static_cast<int>(v.shape[0]), n = static_cast<int>(v.shape[1]);
            const int r = expected_rank(0.25, m, n);
            if (change) {
              // svd: the reference's own top-r subspace of this step's gradient.
              // random / randk: the draw the optimizer made (checked separately below).
              if (std::string(proj) == "svd") {
                P[k] = top_singular_projector(G, m, n, r);
              } else if (std::string(proj) == "random") {
                const StateTensor& proj_state = find_state(st, v.name + "/projector");
                P[k] = to_vec(proj_state.data, proj_state.numel);
              } else {
                const StateTensor& idx = find_state(st, v.name + "/indices");
                std::vector<int> cols;
                for (int64_t j = 0; j < idx.numel; ++j) cols.push_back(static_cast<int>(idx.data[j]));
                P[k] = selection_projector(cols, m, n);
              }
              M[k].assign(m >= n ? m * r : r * n, 0.0);
              V[k].assign(M[k].size(), 0.0);
            }
            const Vec R = coords_of(G, P[k], m, n, r);
            const Vec PG = lift_of(R, P[k], m, n, r);
            Vec U(R.size());
            for (size_t i = 0; i < R.size(); ++i) {
              M[k][i] = b1 * M[k][i] + (1 - b1) * R[i];
              V[k][i] = b2 * V[k][i] + (1 - b2) * R[i] * R[i];
              U[i] = (M[k][i] / bc1) / (std::sqrt(V[k][i] / bc2) + eps);
            }
            const Vec up = lift_of(U, P[k], m, n, r);
            for (int64_t i = 0; i < v.numel; ++i)
              W[k][i] = W[k][i] * (1 - lr * wd) - lr * up[i] - lr * 0.5 * state_free_rule(free, G[i] - PG[i]);
          }
          for (int64_t i = 0; i < v.numel; ++i) max_err = std::max(max_err, std::fabs(p.at(v)[i] - W[k][i]));
        }
      }
      // Weights ~1 after 10 float32 steps: rounding ~10 * 2^-24 * |p| ~ 1e-6;
      // float32 SVD/GEMM coordinates (relative ~1e-6) move an update of size
      // lr ~ 1e-2 by far less. 1e-5 leaves room and still catches any wrong
      // term (each is >= lr * 0.5 * |x| ~ 1e-3).
      EXPECT_LT(max_err, 1e-5);
      EXPECT_EQ(opt.step_count(), kSteps);
    }
}

// ---- the subspaces ---------------------------------------------------------------------------

TEST(Frugal, SvdProjectorIsOrthonormalAndSpansTheTopSingularSubspace) {
  const OptimConfig cfg = frugal_config("svd", "signsgd");
  const ParamTable table = matrix_table();
  Frugal opt(Context{}, cfg, whole_group(table, "frugal", 0.0), table, 1);
  FlatBuffer p(table), g(table);
  Rng rng(3);
  for (const TensorView& v : table.views())
    fill_gapped(rng, g.at(v), static_cast<int>(v.shape[0]), static_cast<int>(v.shape[1]));
  opt.step(p, g, 1e-3);
  const std::vector<StateTensor> st = opt.state_tensors();
  for (const TensorView& v : table.views()) {
    SCOPED_TRACE(v.name);
    const int m = static_cast<int>(v.shape[0]), n = static_cast<int>(v.shape[1]), r = expected_rank(0.25, m, n);
    const StateTensor& P = find_state(st, v.name + "/projector");
    ASSERT_EQ(P.shape, (m >= n ? Shape{r, n} : Shape{m, r}));
    const Vec Pd = to_vec(P.data, P.numel);
    const Vec Pref = top_singular_projector(to_vec(g.at(v), v.numel), m, n, r);
    const int d = m >= n ? n : m;
    auto entry = [&](const Vec& X, int a, int j) { return m >= n ? X[j * n + a] : X[a * r + j]; };
    for (int j = 0; j < r; ++j)  // orthonormal basis vectors
      for (int l = 0; l < r; ++l) {
        double dot = 0;
        for (int a = 0; a < d; ++a) dot += entry(Pd, a, j) * entry(Pd, a, l);
        EXPECT_NEAR(dot, j == l ? 1.0 : 0.0, 1e-5) << j << "," << l;  // float32 vectors of length <= 16
      }
    for (int a = 0; a < d; ++a)  // the same subspace: equal orthogonal projectors
      for (int b = 0; b < d; ++b) {
        double got = 0, want = 0;
        for (int j = 0; j < r; ++j) {
          got += entry(Pd, a, j) * entry(Pd, b, j);
          want += entry(Pref, a, j) * entry(Pref, b, j);
        }
        // Singular-value gap >= 3/16 of ||G|| ~ 3.5: float32 SVD error ~ 2^-24 * 3.5 / 0.19 ~ 1e-6.
        EXPECT_NEAR(got, want, 1e-5) << a << "," << b;
      }
  }
}

TEST(Frugal, RandomBasesAreOrthonormalAndRedrawnAtEachChange) {
  const OptimConfig cfg = frugal_config("random", "signsgd");
  const ParamTable table = matrix_table();
  Frugal opt(Context{}, cfg, whole_group(table, "frugal", 0.0), table, 5);
  FlatBuffer p(table), g(table);
  std::map<std::string, Vec> previous;
  for (int t = 1; t <= 9; ++t) {
    opt.step(p, g, 1e-3);  // the draw does not depend on the gradient
    if ((t - 1) % 4 != 0) continue;
    const std::vector<StateTensor> st = opt.state_tensors();
    for (const TensorView& v : table.views()) {
      SCOPED_TRACE(v.name + " step " + std::to_string(t));
      const int m = static_cast<int>(v.shape[0]), n = static_cast<int>(v.shape[1]), r = expected_rank(0.25, m, n);
      const Vec P = to_vec(find_state(st, v.name + "/projector").data, m >= n ? r * n : m * r);
      const int d = m >= n ? n : m;
      auto entry = [&](int a, int j) { return m >= n ? P[j * n + a] : P[a * r + j]; };
      for (int j = 0; j < r; ++j)
        for (int l = 0; l < r; ++l) {
          double dot = 0;
          for (int a = 0; a < d; ++a) dot += entry(a, j) * entry(a, l);
          EXPECT_NEAR(dot, j == l ? 1.0 : 0.0, 1e-6) << j << "," << l;  // float32 rounding of a float64 QR
        }
      if (previous.count(v.name)) {
        double diff = 0;
        for (size_t i = 0; i < P.size(); ++i) diff = std::max(diff, std::fabs(P[i] - previous[v.name][i]));
        EXPECT_GT(diff, 0.1) << "a new subspace at each change";
      }
      previous[v.name] = P;
    }
  }
}

TEST(Frugal, RandKIndicesAreDistinctSortedAndRedrawn) {
  const OptimConfig cfg = frugal_config("randk", "signsgd");
  const ParamTable table = matrix_table();
  Frugal opt(Context{}, cfg, whole_group(table, "frugal", 0.0), table, 5);
  FlatBuffer p(table), g(table);
  std::map<std::string, std::vector<float>> previous;
  int changed = 0;
  for (int t = 1; t <= 13; ++t) {
    opt.step(p, g, 1e-3);
    if ((t - 1) % 4 != 0) continue;
    const std::vector<StateTensor> st = opt.state_tensors();
    for (const TensorView& v : table.views()) {
      const int m = static_cast<int>(v.shape[0]), n = static_cast<int>(v.shape[1]);
      const StateTensor& idx = find_state(st, v.name + "/indices");
      ASSERT_EQ(idx.numel, expected_rank(0.25, m, n)) << v.name;
      std::vector<float> cur(idx.data, idx.data + idx.numel);
      for (size_t j = 0; j < cur.size(); ++j) {
        EXPECT_EQ(cur[j], std::floor(cur[j])) << v.name;
        EXPECT_GE(cur[j], 0.0f);
        EXPECT_LT(cur[j], static_cast<float>(std::min(m, n))) << v.name << ": indices on the smaller side";
        if (j > 0) {
          EXPECT_LT(cur[j - 1], cur[j]) << v.name << ": distinct and ascending";
        }
      }
      if (previous.count(v.name) && previous[v.name] != cur) ++changed;
      previous[v.name] = cur;
    }
  }
  EXPECT_GE(changed, 5) << "of 9 redraws (3 changes x 3 tensors), most pick another subset";
}

TEST(Frugal, BlockwiseTakesTensorsUntilTheDensityBudgetAndVisitsAll) {
  const OptimConfig cfg = frugal_config("blockwise", "signsgd");
  const ParamTable table = block_table();
  Frugal opt(Context{}, cfg, whole_group(table, "frugal", 0.0), table, 11);
  FlatBuffer p(table), g(table);
  const int64_t total = table.param_count();  // 72 + 140 + 256 + 7 + 15 = 490
  const double budget = 0.25 * static_cast<double>(total);
  std::vector<int> times_active(table.size(), 0);
  for (int t = 1; t <= 4 * 20; ++t) {
    opt.step(p, g, 1e-3);
    if ((t - 1) % 4 != 0) continue;
    const StateTensor active = find_state(opt.state_tensors(), "active");  // a copy: the vector is a temporary
    int64_t taken = 0, largest = 0;
    for (size_t k = 0; k < table.size(); ++k) {
      ASSERT_TRUE(active.data[k] == 0.0f || active.data[k] == 1.0f);
      if (active.data[k] == 0.0f) continue;
      ++times_active[k];
      taken += table.view(static_cast<int>(k)).numel;
      largest = std::max(largest, table.view(static_cast<int>(k)).numel);
    }
    // The walk stops at the first tensor that reaches the budget: so the set
    // reaches it, and dropping its largest tensor falls below it.
    EXPECT_GE(static_cast<double>(taken), budget) << "step " << t;
    EXPECT_LT(static_cast<double>(taken - largest), budget) << "step " << t;
    EXPECT_LE(taken, find_state(opt.state_tensors(), "exp_avg").numel) << "fits the fixed capacity";
  }
  for (size_t k = 0; k < table.size(); ++k)
    EXPECT_GT(times_active[k], 0) << table.view(static_cast<int>(k)).name << " never state-full in 20 draws";
}

// ---- the split, the reset, the size -------------------------------------------------------------

TEST(Frugal, SplitGradientPartsAddBackToTheGradient) {
  for (const char* proj : {"svd", "random", "randk", "blockwise"}) {
    SCOPED_TRACE(proj);
    const OptimConfig cfg = frugal_config(proj, "signsgd");
    const bool blockwise = std::string(proj) == "blockwise";
    const ParamTable table = blockwise ? block_table() : matrix_table();
    Frugal opt(Context{}, cfg, whole_group(table, "frugal", 0.0), table, 2);
    FlatBuffer p(table), g(table);
    Rng rng(9);
    for (int64_t i = 0; i < g.numel(); ++i) g.data()[i] = static_cast<float>(rng.normal());
    opt.step(p, g, 1e-3);  // chooses a subspace
    for (int64_t i = 0; i < g.numel(); ++i) g.data()[i] = static_cast<float>(rng.normal());
    const std::vector<StateTensor> st = opt.state_tensors();
    for (size_t k = 0; k < table.size(); ++k) {
      const TensorView& v = table.view(static_cast<int>(k));
      SCOPED_TRACE(v.name);
      const float* G = g.at(v);
      std::vector<float> coords(v.numel, -7.0f), stateful(v.numel), free(v.numel), again(v.numel);
      opt.split_gradient(k, G, coords.data(), free.data());
      opt.lift(k, coords.data(), stateful.data());
      // P(G) + (G - P(G)) = G: the free part is G - P(G) rounded once.
      for (int64_t i = 0; i < v.numel; ++i) EXPECT_NEAR(stateful[i] + free[i], G[i], 1e-6 * (1 + std::fabs(G[i])));
      if (blockwise) {
        const bool active = find_state(st, "active").data[k] != 0.0f;
        for (int64_t i = 0; i < v.numel; ++i) {
          EXPECT_EQ(free[i], active ? 0.0f : G[i]);
          if (active) {
            EXPECT_EQ(coords[i], G[i]);
          }
        }
        continue;
      }
      const int m = static_cast<int>(v.shape[0]), n = static_cast<int>(v.shape[1]), r = expected_rank(0.25, m, n);
      Vec P;
      if (std::string(proj) == "randk") {
        const StateTensor& idx = find_state(st, v.name + "/indices");
        std::vector<int> sel;
        for (int64_t j = 0; j < idx.numel; ++j) sel.push_back(static_cast<int>(idx.data[j]));
        P = selection_projector(sel, m, n);
      } else {
        P = to_vec(find_state(st, v.name + "/projector").data, m >= n ? r * n : m * r);
      }
      const Vec R = coords_of(to_vec(G, v.numel), P, m, n, r);
      const Vec PG = lift_of(R, P, m, n, r);
      for (size_t i = 0; i < R.size(); ++i) EXPECT_NEAR(coords[i], R[i], 1e-5);  // float32 dots of length <= 16
      for (int64_t i = 0; i < v.numel; ++i) {
        if (std::string(proj) == "randk") {  // a coordinate split: exact
          EXPECT_EQ(stateful[i], static_cast<float>(PG[i]));
          EXPECT_TRUE(free[i] == 0.0f || stateful[i] == 0.0f);
        } else {
          EXPECT_NEAR(stateful[i], PG[i], 1e-5);
        }
      }
      // P is a projector: the state-full part has no state-free remainder.
      opt.split_gradient(k, stateful.data(), coords.data(), again.data());
      for (int64_t i = 0; i < v.numel; ++i) EXPECT_NEAR(again[i], 0.0, 1e-5);
    }
  }
}

TEST(Frugal, MomentsAreZeroAfterASubspaceChange) {
  for (const char* proj : {"svd", "random", "randk", "blockwise"}) {
    SCOPED_TRACE(proj);
    const OptimConfig cfg = frugal_config(proj, "sgd");
    const ParamTable table = std::string(proj) == "blockwise" ? block_table() : matrix_table();
    Frugal opt(Context{}, cfg, whole_group(table, "frugal", 0.1), table, 4);
    FlatBuffer p(table), g(table);
    Rng rng(5);
    auto fill = [&] {
      for (int64_t i = 0; i < g.numel(); ++i) g.data()[i] = static_cast<float>(rng.normal());
    };
    auto moments = [&] {
      std::vector<StateTensor> out;
      for (const StateTensor& s : opt.state_tensors())
        if (s.name.find("exp_avg") != std::string::npos) out.push_back(s);
      return out;
    };
    for (int t = 1; t <= 3; ++t) fill(), opt.step(p, g, 1e-2);
    double before = 0;
    for (const StateTensor& s : moments())
      for (int64_t i = 0; i < s.numel; ++i) before += std::fabs(s.data[i]);
    EXPECT_GT(before, 0.0);
    fill();
    opt.choose_subspace(g);  // what step 5 does before its update
    for (const StateTensor& s : moments())
      for (int64_t i = 0; i < s.numel; ++i) ASSERT_EQ(s.data[i], 0.0f) << s.name << "[" << i << "]";

    // Through step(): step 5 changes the subspace, and its moments hold this
    // step's coordinates only, none of the old ones.
    Frugal opt2(Context{}, cfg, whole_group(table, "frugal", 0.1), table, 4);
    for (int t = 1; t <= 5; ++t) fill(), opt2.step(p, g, 1e-2);
    const std::vector<StateTensor> st = opt2.state_tensors();
    if (std::string(proj) == "blockwise") {
      const float* active = find_state(st, "active").data;
      const float* m = find_state(st, "exp_avg").data;
      const float* v = find_state(st, "exp_avg_sq").data;
      int64_t off = 0;
      for (size_t k = 0; k < table.size(); ++k) {
        if (active[k] == 0.0f) continue;
        const TensorView& view = table.view(static_cast<int>(k));
        for (int64_t i = 0; i < view.numel; ++i, ++off) {
          const float gi = g.at(view)[i];
          EXPECT_NEAR(m[off], 0.2f * gi, 1e-6);  // one float rounding of (1 - b1) g
          EXPECT_NEAR(v[off], 0.05f * gi * gi, 1e-6);
        }
      }
      continue;
    }
    for (size_t k = 0; k < table.size(); ++k) {
      const TensorView& view = table.view(static_cast<int>(k));
      std::vector<float> coords(view.numel);
      opt2.split_gradient(k, g.at(view), coords.data(), nullptr);
      const StateTensor& m = find_state(st, view.name + "/exp_avg");
      const StateTensor& v = find_state(st, view.name + "/exp_avg_sq");
      for (int64_t i = 0; i < m.numel; ++i) {
        EXPECT_NEAR(m.data[i], 0.2f * coords[i], 1e-6) << view.name;
        EXPECT_NEAR(v.data[i], 0.05f * coords[i] * coords[i], 1e-5) << view.name;
      }
    }
  }
}

TEST(Frugal, StateSizeIsAQuarterOfAdamWPlusTheProjectors) {
  ParamTable t;
  t.add("w1", {64, 32});  // m >= n: r = 8, moments (64, 8), projector (8, 32)
  t.add("w2", {32, 96});  // m <  n: r = 8, moments (8, 96), projector (32, 8)
  const ParamGroup group = whole_group(t, "frugal", 0.0);
  const int64_t adamw = 2 * (64 * 32 + 32 * 96);  // 10240
  const int64_t quarter = adamw / 4;              // 2560 = 2 * (64 * 8 + 8 * 96)
  const int64_t expected[] = {
      quarter + 8 * 32 + 32 * 8,  // svd: + the projectors
      quarter + 8 * 32 + 32 * 8,  // random
      quarter + 16 + 16,          // randk: 8 indices each, padded to 16
      // blockwise: "active" (2, padded to 16) + 2 x capacity (floor(0.25 * 5120) + 3072)
      16 + 2 * (1280 + 3072)};
  int i = 0;
  for (const char* proj : {"svd", "random", "randk", "blockwise"}) {
    OptimConfig cfg = frugal_config(proj, "signsgd");
    Frugal opt(Context{}, cfg, group, t, 0);
    const int64_t planned = find_update_rule("frugal").state_floats(cfg, group, t);
    EXPECT_EQ(planned, expected[i++]) << proj;
    EXPECT_EQ(opt.state_bytes(), static_cast<size_t>(planned) * sizeof(float)) << proj;
    int64_t listed = 0;
    for (const StateTensor& s : opt.state_tensors()) listed += s.numel;
    EXPECT_LE(listed, planned) << proj;  // the rest is alignment padding
  }
}

// ---- configuration and registration --------------------------------------------------------

TEST(Frugal, OneDimensionalTensorInAProjectedGroupIsAConfigError) {
  ParamTable t;
  t.add("model.layers.0.mlp.up_proj.weight", {16, 8});
  t.add("model.layers.0.post_attention_layernorm.weight", {8});
  const ParamGroup group = whole_group(t, "frugal", 0.0);
  for (const char* proj : {"svd", "random", "randk"}) {
    try {
      Frugal opt(Context{}, frugal_config(proj, "signsgd"), group, t, 0);
      FAIL() << proj << ": expected ConfigError";
    } catch (const ConfigError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("'model.layers.0.post_attention_layernorm.weight' has shape (8,)"), std::string::npos) << msg;
      EXPECT_NE(msg.find("add `ndim: 2`"), std::string::npos) << msg;
    }
    EXPECT_THROW(find_update_rule("frugal").state_floats(frugal_config(proj, "signsgd"), group, t), ConfigError);
  }
  EXPECT_NO_THROW(Frugal(Context{}, frugal_config("blockwise", "signsgd"), group, t, 0));
  OptimConfig bad = frugal_config("svd", "signsgd");
  bad.frugal.proj_type = "topk";
  EXPECT_THROW(Frugal(Context{}, bad, whole_group(t, "frugal", 0.0), t, 0), ConfigError);
}

TEST(Frugal, RegisteredAndUsedByTheDefaultFrugalGroups) {
  ParamTable t;
  t.add("model.layers.0.mlp.up_proj.weight", {16, 8});
  t.add("model.layers.0.input_layernorm.weight", {8});
  OptimConfig cfg = frugal_config("randk", "signsgd");
  EXPECT_STREQ(find_update_rule("frugal").name, "frugal");
  auto opt = make_optimizer(Context{}, cfg, t, 3);
  bool has_indices = false, has_rng = false;
  for (const StateTensor& s : opt->state_tensors())
    has_indices |= s.name == "frugal/model.layers.0.mlp.up_proj.weight/indices";
  for (const StateWord& w : opt->state_words()) has_rng |= w.name == "frugal/rng/5";
  EXPECT_TRUE(has_indices);
  EXPECT_TRUE(has_rng);
}

// ---- save / restore -------------------------------------------------------------------------

TEST(Frugal, RestoredStateContinuesBitIdenticallyAcrossASubspaceChange) {
  for (const char* proj : {"svd", "random", "randk", "blockwise"}) {
    SCOPED_TRACE(proj);
    const OptimConfig cfg = frugal_config(proj, "signsgd");
    const ParamTable table = std::string(proj) == "blockwise" ? block_table() : matrix_table();
    const ParamGroup group = whole_group(table, "frugal", 0.1);
    const int kSave = 3, kSteps = 10;  // changes at 5 and 9 after the save
    std::vector<FlatBuffer> grads;
    Rng rng(21);
    for (int s = 0; s < kSteps; ++s) {
      grads.emplace_back(table);
      for (int64_t i = 0; i < grads.back().numel(); ++i) grads.back().data()[i] = static_cast<float>(rng.normal());
    }
    FlatBuffer pa(table), pb(table);
    for (int64_t i = 0; i < pa.numel(); ++i) pa.data()[i] = static_cast<float>(rng.normal());
    Frugal a(Context{}, cfg, group, table, 77);
    for (int s = 0; s < kSave; ++s) a.step(pa, grads[s], 1e-2 * (1 + 0.1 * s));

    Frugal b(Context{}, cfg, group, table, 12345);  // another seed: the RNG must come from the save
    std::memcpy(pb.data(), pa.data(), sizeof(float) * static_cast<size_t>(pa.numel()));
    const std::vector<StateTensor> from = a.state_tensors(), to = b.state_tensors();
    ASSERT_EQ(from.size(), to.size());
    for (size_t i = 0; i < from.size(); ++i) {
      ASSERT_EQ(from[i].name, to[i].name);
      ASSERT_EQ(from[i].numel, to[i].numel);
      std::memcpy(to[i].data, from[i].data, sizeof(float) * static_cast<size_t>(from[i].numel));
    }
    const std::vector<StateWord> wa = a.state_words(), wb = b.state_words();
    ASSERT_EQ(wa.size(), wb.size());
    for (size_t i = 0; i < wa.size(); ++i) {
      ASSERT_EQ(wa[i].name, wb[i].name);
      *wb[i].value = *wa[i].value;
    }
    EXPECT_EQ(b.step_count(), kSave);

    for (int s = kSave; s < kSteps; ++s) {
      a.step(pa, grads[s], 1e-2 * (1 + 0.1 * s));
      b.step(pb, grads[s], 1e-2 * (1 + 0.1 * s));
    }
    EXPECT_EQ(std::memcmp(pa.data(), pb.data(), sizeof(float) * static_cast<size_t>(pa.numel())), 0);
    const std::vector<StateTensor> sa = a.state_tensors(), sb = b.state_tensors();
    for (size_t i = 0; i < sa.size(); ++i)
      EXPECT_EQ(std::memcmp(sa[i].data, sb[i].data, sizeof(float) * static_cast<size_t>(sa[i].numel)), 0)
          << sa[i].name;
  }
}
