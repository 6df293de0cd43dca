// GaLore against a float64 reference of the official update rule (its own
// SVD: Jacobi eigenvectors of G^T G or G G^T), the randomized projector
// against the exact one, its state layout, save/restore and errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "optim/galore.h"
#include "optim/galore_projector.h"
#include "optim/param_groups.h"
#include "runtime/cpu/linalg.h"
#include "runtime/error.h"
#include "runtime/rng.h"
#include "optim_test_util.h"

using namespace lintrain;
using test::fill_normal;
using test::whole_group;

namespace {

using Mat = std::vector<double>;  // row-major

// ---- float64 reference ------------------------------------------------------------------

// Eigenvalues (descending) and eigenvectors (columns of V (n, n)) of the
// symmetric A (n, n), by cyclic Jacobi rotations.
void jacobi_eigen(Mat A, int n, std::vector<double>& eval, Mat& V) {
  V.assign(static_cast<size_t>(n) * n, 0.0);
  for (int i = 0; i < n; ++i) V[i * n + i] = 1.0;
  for (int sweep = 0; sweep < 100; ++sweep) {
    double off = 0.0, diag = 0.0;
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j) (i == j ? diag : off) += A[i * n + j] * A[i * n + j];
    if (off <= 1e-30 * diag) break;
    for (int p = 0; p < n; ++p)
      for (int q = p + 1; q < n; ++q) {
        if (A[p * n + q] == 0.0) continue;
        const double theta = (A[q * n + q] - A[p * n + p]) / (2.0 * A[p * n + q]);
        const double t = (theta >= 0 ? 1.0 : -1.0) / (std::fabs(theta) + std::sqrt(theta * theta + 1.0));
        const double c = 1.0 / std::sqrt(t * t + 1.0), s = t * c;
        for (int k = 0; k < n; ++k) {  // A = A J
          const double akp = A[k * n + p], akq = A[k * n + q];
          A[k * n + p] = c * akp - s * akq;
          A[k * n + q] = s * akp + c * akq;
        }
        for (int k = 0; k < n; ++k) {  // A = J^T A
          const double apk = A[p * n + k], aqk = A[q * n + k];
          A[p * n + k] = c * apk - s * aqk;
          A[q * n + k] = s * apk + c * aqk;
        }
        for (int k = 0; k < n; ++k) {  // V = V J
          const double vkp = V[k * n + p], vkq = V[k * n + q];
          V[k * n + p] = c * vkp - s * vkq;
          V[k * n + q] = s * vkp + c * vkq;
        }
      }
  }
  std::vector<int> order(n);
  for (int i = 0; i < n; ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](int a, int b) { return A[a * n + a] > A[b * n + b]; });
  Mat sorted(static_cast<size_t>(n) * n);
  eval.resize(n);
  for (int j = 0; j < n; ++j) {
    eval[j] = A[order[j] * n + order[j]];
    for (int i = 0; i < n; ++i) sorted[i * n + j] = V[i * n + order[j]];
  }
  V = sorted;
}

// The GaLore projector of G (m, n) in float64: the top-r eigenvectors of
// G^T G (m >= n; P (r, n), rows) or G G^T (m < n; P (m, r), columns), each
// signed so its largest-magnitude entry is positive (lintrain's convention).
Mat reference_projector(const Mat& G, int m, int n, int r) {
  const bool left = m < n;
  const int s = left ? m : n;
  Mat gram(static_cast<size_t>(s) * s, 0.0);
  for (int i = 0; i < s; ++i)
    for (int j = 0; j < s; ++j) {
      double acc = 0.0;
      if (left)
        for (int k = 0; k < n; ++k) acc += G[i * n + k] * G[j * n + k];
      else
        for (int k = 0; k < m; ++k) acc += G[k * n + i] * G[k * n + j];
      gram[i * s + j] = acc;
    }
  std::vector<double> eval;
  Mat V;
  jacobi_eigen(gram, s, eval, V);
  Mat P(static_cast<size_t>(s) * r);
  for (int j = 0; j < r; ++j) {
    int best = 0;
    for (int i = 1; i < s; ++i)
      if (std::fabs(V[i * s + j]) > std::fabs(V[best * s + j])) best = i;
    const double sign = V[best * s + j] < 0 ? -1.0 : 1.0;
    for (int i = 0; i < s; ++i) (left ? P[i * r + j] : P[j * s + i]) = sign * V[i * s + j];
  }
  return P;
}

// The official GaLore AdamW step on one matrix, in float64 with naive loops.
struct ReferenceGalore {
  int m, n, r, gap;
  double b1, b2, eps, scale, wd;
  Mat P, M, V;  // P (r, n) or (m, r); M, V (m, r) or (r, n)
  int t = 0;

  bool left() const { return m < n; }
  void step(Mat& W, const Mat& G, double lr) {
    if (t % gap == 0) P = reference_projector(G, m, n, r);
    const int rows = left() ? r : m, cols = left() ? n : r;
    Mat R(static_cast<size_t>(rows) * cols, 0.0);
    for (int i = 0; i < rows; ++i)
      for (int j = 0; j < cols; ++j) {
        double acc = 0.0;
        if (left())
          for (int k = 0; k < m; ++k) acc += P[k * r + i] * G[k * n + j];  // P^T G
        else
          for (int k = 0; k < n; ++k) acc += G[i * n + k] * P[j * n + k];  // G P^T
        R[i * cols + j] = acc;
      }
    if (M.empty()) M.assign(R.size(), 0.0), V.assign(R.size(), 0.0);
    ++t;
    Mat N(R.size());
    for (size_t i = 0; i < R.size(); ++i) {
      M[i] = b1 * M[i] + (1 - b1) * R[i];
      V[i] = b2 * V[i] + (1 - b2) * R[i] * R[i];
      N[i] = M[i] / (std::sqrt(V[i]) + eps);
    }
    const double step_size = lr * std::sqrt(1 - std::pow(b2, t)) / (1 - std::pow(b1, t));
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < n; ++j) {
        double back = 0.0;
        if (left())
          for (int k = 0; k < r; ++k) back += P[i * r + k] * N[k * n + j];  // P N
        else
          for (int k = 0; k < r; ++k) back += N[i * r + k] * P[k * n + j];  // N P
        W[i * n + j] -= step_size * scale * back;
      }
    for (double& w : W) w -= lr * wd * w;
  }
};

// P P^T (or P^T P for a (r, n) projector): the orthogonal projector onto the
// subspace, independent of the basis and its signs. Returned (s, s).
Mat subspace_projector(const float* P, int m, int n, int r) {
  const bool left = m < n;
  const int s = left ? m : n;
  Mat out(static_cast<size_t>(s) * s, 0.0);
  for (int i = 0; i < s; ++i)
    for (int j = 0; j < s; ++j)
      for (int k = 0; k < r; ++k)
        out[i * s + j] += left ? double(P[i * r + k]) * P[j * r + k] : double(P[k * n + i]) * P[k * n + j];
  return out;
}
Mat subspace_projector(const Mat& P, int m, int n, int r) {
  std::vector<float> f(P.begin(), P.end());
  return subspace_projector(f.data(), m, n, r);
}
double frobenius_distance(const Mat& a, const Mat& b) {
  double acc = 0.0;
  for (size_t i = 0; i < a.size(); ++i) acc += (a[i] - b[i]) * (a[i] - b[i]);
  return std::sqrt(acc);
}

// Orthonormal (k, d) rows from a Gaussian draw (Gram-Schmidt in float64).
Mat random_orthonormal_rows(int k, int d, Rng& rng) {
  Mat Q(static_cast<size_t>(k) * d);
  for (double& x : Q) x = rng.normal();
  for (int i = 0; i < k; ++i) {
    for (int j = 0; j < i; ++j) {
      double dot = 0.0;
      for (int c = 0; c < d; ++c) dot += Q[i * d + c] * Q[j * d + c];
      for (int c = 0; c < d; ++c) Q[i * d + c] -= dot * Q[j * d + c];
    }
    double norm = 0.0;
    for (int c = 0; c < d; ++c) norm += Q[i * d + c] * Q[i * d + c];
    for (int c = 0; c < d; ++c) Q[i * d + c] /= std::sqrt(norm);
  }
  return Q;
}

// sum_i sigma_i u_i v_i^T + noise * N(0, 1), with random orthonormal u_i, v_i.
void spectral_matrix(float* G, int m, int n, const std::vector<double>& sigma, double noise, Rng& rng) {
  const int q = static_cast<int>(sigma.size());
  const Mat U = random_orthonormal_rows(q, m, rng), V = random_orthonormal_rows(q, n, rng);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      double g = noise * rng.normal();
      for (int k = 0; k < q; ++k) g += sigma[k] * U[k * m + i] * V[k * n + j];
      G[i * n + j] = static_cast<float>(g);
    }
}

// A gradient whose top 4 singular values (6, 4.5, 3, 2) are distinct and far
// above the rest (<= ~0.5 with the noise), so its rank-4 subspace is well
// defined; the tests below use rank 4.
void gapped_gradient(float* G, int m, int n, Rng& rng) {
  spectral_matrix(G, m, n, {6.0, 4.5, 3.0, 2.0, 0.3, 0.2}, 0.02, rng);
}

OptimConfig galore_config(int rank, int gap) {
  OptimConfig cfg;
  cfg.name = "galore";
  cfg.galore.rank = rank;
  cfg.galore.update_proj_gap = gap;
  cfg.galore.scale = 0.25;
  cfg.galore.betas = {0.9, 0.999};
  cfg.galore.eps = 1e-6;
  return cfg;
}

const float* state_of(Optimizer& opt, const std::string& name) {
  for (const StateTensor& t : opt.state_tensors())
    if (t.name == name) return t.data;
  ADD_FAILURE() << "no state tensor " << name;
  return nullptr;
}

// ---- the update rule against the reference ---------------------------------------------

struct Orientation {
  int m, n;
};

class GaloreReference : public ::testing::TestWithParam<Orientation> {};

TEST_P(GaloreReference, MatchesFloat64ReferenceAcrossRefreshes) {
  const int m = GetParam().m, n = GetParam().n, rank = 4, gap = 5, steps = 13;  // refreshes at t = 0, 5, 10
  ParamTable table;
  table.add("w", {m, n});
  const OptimConfig cfg = galore_config(rank, gap);
  const double wd = 0.1;
  Galore opt(Context{}, cfg, whole_group(table, "galore", wd), table, /*seed=*/1);
  FlatBuffer p(table), g(table);
  Rng rng(7);
  Mat W(static_cast<size_t>(m) * n), G(W.size());
  for (int64_t i = 0; i < m * n; ++i) W[i] = p.data()[i] = static_cast<float>(rng.normal());
  ReferenceGalore ref{m, n, rank, gap, 0.9, 0.999, 1e-6, 0.25, wd, {}, {}, {}};

  for (int t = 0; t < steps; ++t) {
    const double lr = 1e-2 * (1.0 + 0.5 * std::sin(t));  // a varying schedule
    gapped_gradient(g.data(), m, n, rng);
    for (int64_t i = 0; i < m * n; ++i) G[i] = g.data()[i];
    opt.step(p, g, lr);
    ref.step(W, G, lr);

    const float* P = state_of(opt, "w/projector");
    const float* M = state_of(opt, "w/exp_avg");
    const float* V = state_of(opt, "w/exp_avg_sq");
    // sgesdd in float32 against float64 eigenvectors: the subspace moves by
    // ~eps_f32 * sigma_1 / (sigma_4 - sigma_5) ~ 2e-7 and P's entries carry
    // their own rounding; measured 6e-7..1.5e-6 in Frobenius norm. 1e-5 is far
    // below any wrong subspace (~1).
    EXPECT_LT(frobenius_distance(subspace_projector(P, m, n, rank), subspace_projector(ref.P, m, n, rank)), 1e-5)
        << "step " << t;
    // The same signs (the canonical convention), so P and the moments match
    // entrywise; P's entries are within ~4e-7 (measured), bounded by 5e-6.
    for (size_t i = 0; i < ref.P.size(); ++i) ASSERT_NEAR(P[i], ref.P[i], 5e-6) << "step " << t << " P " << i;
    // Moments are O(|R|) ~ 1 (v ~ 1): float32 accumulation over <= 13 steps
    // plus P's error carried through R; measured <= 2.3e-7.
    for (size_t i = 0; i < ref.M.size(); ++i) {
      ASSERT_NEAR(M[i], ref.M[i], 3e-6) << "step " << t << " exp_avg " << i;
      ASSERT_NEAR(V[i], ref.V[i], 3e-6) << "step " << t << " exp_avg_sq " << i;
    }
  }
  // |W| <= 2.7 and each step moves it by ~lr * scale * |N| ~ 1e-2: 13 float32
  // steps round to <= 13 * 2.7 * 6e-8 = 2e-6, and the ~1e-6 relative error of
  // P and the moments moves each update by ~1e-8 (measured <= 9e-7). 1e-5
  // leaves room for Adam's m / sqrt(v) amplifying small R entries.
  for (int64_t i = 0; i < m * n; ++i) EXPECT_NEAR(p.data()[i], W[i], 1e-5) << i;
  EXPECT_EQ(opt.step_count(), steps);
}

INSTANTIATE_TEST_SUITE_P(Orientations, GaloreReference,
                         ::testing::Values(Orientation{24, 10}, Orientation{10, 24}),
                         [](const ::testing::TestParamInfo<Orientation>& info) {
                           return info.param.m >= info.param.n ? std::string("TallProjectsRight")
                                                               : std::string("WideProjectsLeft");
                         });

TEST(Galore, MomentsAndStepCountCarryAcrossARefresh) {
  const int m = 10, n = 24, rank = 4, gap = 3;
  ParamTable table;
  table.add("w", {m, n});
  Galore opt(Context{}, galore_config(rank, gap), whole_group(table, "galore", 0.0), table, 1);
  FlatBuffer p(table), g(table);
  Rng rng(11);
  for (int t = 0; t < gap; ++t) {
    gapped_gradient(g.data(), m, n, rng);
    opt.step(p, g, 1e-2);
  }
  const int64_t lowrank = int64_t{rank} * n;
  const std::vector<float> M_before(state_of(opt, "w/exp_avg"), state_of(opt, "w/exp_avg") + lowrank);
  const std::vector<float> V_before(state_of(opt, "w/exp_avg_sq"), state_of(opt, "w/exp_avg_sq") + lowrank);
  const std::vector<float> P_before(state_of(opt, "w/projector"), state_of(opt, "w/projector") + m * rank);
  const std::vector<float> W_before(p.data(), p.data() + m * n);

  gapped_gradient(g.data(), m, n, rng);
  const double lr = 1e-2;
  opt.step(p, g, lr);  // t = gap: a refresh
  const float* P = state_of(opt, "w/projector");
  const float* M = state_of(opt, "w/exp_avg");
  const float* V = state_of(opt, "w/exp_avg_sq");
  double moved = 0.0;
  for (int i = 0; i < m * rank; ++i) moved += std::fabs(P[i] - P_before[i]);
  ASSERT_GT(moved, 0.5) << "the projector was refreshed from the new gradient";

  // R = P^T G with the new P; the moments continue from their old values.
  Mat R(lowrank, 0.0), N(lowrank);
  double reset_gap = 0.0;
  for (int i = 0; i < rank; ++i)
    for (int j = 0; j < n; ++j) {
      for (int k = 0; k < m; ++k) R[i * n + j] += double(P[k * rank + i]) * g.data()[k * n + j];
      const int64_t e = i * n + j;
      const double m_ref = 0.9 * M_before[e] + 0.1 * R[e], v_ref = 0.999 * V_before[e] + 0.001 * R[e] * R[e];
      // float32 moment update of O(1) values.
      EXPECT_NEAR(M[e], m_ref, 1e-5) << e;
      EXPECT_NEAR(V[e], v_ref, 1e-5) << e;
      N[e] = m_ref / (std::sqrt(v_ref) + 1e-6);
      reset_gap += std::fabs(M[e] - 0.1 * R[e]);
    }
  EXPECT_GT(reset_gap, 0.1) << "exp_avg equals a freshly reset moment";

  // The step counter and bias correction continue: t = gap + 1.
  const int t = gap + 1;
  const double step_size = lr * std::sqrt(1 - std::pow(0.999, t)) / (1 - std::pow(0.9, t));
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      double back = 0.0;
      for (int k = 0; k < rank; ++k) back += double(P[i * rank + k]) * N[k * n + j];
      // Update ~1e-3 from a float32 W ~ 1e-2: rounding ~1e-9, N's ~1e-5 error times step_size.
      EXPECT_NEAR(p.data()[i * n + j], W_before[i * n + j] - step_size * 0.25 * back, 1e-7);
    }
  EXPECT_EQ(opt.step_count(), gap + 1);
}

// ---- randomized SVD ----------------------------------------------------------------------

TEST(GaloreProjector, RandomizedSubspaceMatchesExactOnDecayingSpectrum) {
  // sigma_i = 0.8^i (i = 0..63): no clean gap anywhere, only decay.
  std::vector<double> sigma(64);
  for (int i = 0; i < 64; ++i) sigma[i] = std::pow(0.8, i);
  for (const Orientation o : {Orientation{150, 96}, Orientation{96, 150}}) {
    const int m = o.m, n = o.n, r = 16;
    std::vector<float> G(static_cast<size_t>(m) * n);
    Rng rng(5);
    spectral_matrix(G.data(), m, n, sigma, 0.0, rng);
    GaloreConfig exact_cfg;
    exact_cfg.svd = "exact";
    GaloreConfig rand_cfg = exact_cfg;
    rand_cfg.svd = "randomized";
    rand_cfg.svd_oversample = 8;
    rand_cfg.svd_power_iters = 2;
    GaloreProjector exact(exact_cfg), randomized(rand_cfg);
    const size_t psize = static_cast<size_t>(r) * std::max(m, n);
    std::vector<float> Pe(psize), Pr(psize);
    Rng sketch(9);
    exact.compute(G.data(), m, n, r, Pe.data(), sketch);
    randomized.compute(G.data(), m, n, r, Pr.data(), sketch);
    // Subspace iteration with k = r + 8 = 24 sketch columns and q = 2 power
    // iterations captures the top-r subspace up to ~(sigma_{k+1} / sigma_r)^(2q+1)
    // = (0.8^9)^5 ~ 4e-5 (Halko et al. 2011, Thm 9.1 / Cor 10.10), times a
    // modest dimension factor; the float32 QR and GEMMs add ~1e-6. The
    // Frobenius distance of two rank-16 projectors is at most sqrt(32) ~ 5.7,
    // and an unconverged basis (q = 0) is ~1e-1 away.
    const double dist = frobenius_distance(subspace_projector(Pr.data(), m, n, r),
                                           subspace_projector(Pe.data(), m, n, r));
    EXPECT_LT(dist, 2e-3) << m << "x" << n;  // measured 1e-4 (150 x 96) and 3e-4 (96 x 150)
    // Both orthonormal: P P^T of an orthonormal basis is idempotent with trace r.
    const Mat proj = subspace_projector(Pr.data(), m, n, r);
    double trace = 0.0;
    for (int i = 0; i < std::min(m, n); ++i) trace += proj[i * std::min(m, n) + i];
    EXPECT_NEAR(trace, r, 1e-4) << "float32 QR: ~r * 1e-6";
  }
}

TEST(Galore, RandomizedSvdTracksExactOnGappedGradients) {
  // k = rank + oversample = 12 sketch columns, fewer than the smaller side (30),
  // so the sketch really is a subspace iteration.
  for (const Orientation o : {Orientation{48, 30}, Orientation{30, 48}}) {
    const int m = o.m, n = o.n, rank = 4, gap = 5, steps = 13;
    ParamTable table;
    table.add("w", {m, n});
    OptimConfig exact_cfg = galore_config(rank, gap), rand_cfg = exact_cfg;
    rand_cfg.galore.svd = "randomized";
    Galore exact(Context{}, exact_cfg, whole_group(table, "galore", 0.1), table, 1);
    Galore randomized(Context{}, rand_cfg, whole_group(table, "galore", 0.1), table, 1);
    FlatBuffer pe(table), pr(table), g(table);
    Rng rng(13);
    for (int64_t i = 0; i < m * n; ++i) pe.data()[i] = pr.data()[i] = static_cast<float>(rng.normal());
    for (int t = 0; t < steps; ++t) {
      gapped_gradient(g.data(), m, n, rng);
      exact.step(pe, g, 1e-2);
      randomized.step(pr, g, 1e-2);
      // sigma_13 / sigma_4 ~ 0.25 / 2 (the noise's top singular values) and
      // q = 2: the sketch captures the subspace to ~0.12^5 ~ 3e-5, then
      // float32 rounding; measured 3e-6..7e-6.
      EXPECT_LT(frobenius_distance(subspace_projector(state_of(randomized, "w/projector"), m, n, rank),
                                   subspace_projector(state_of(exact, "w/projector"), m, n, rank)),
                1e-4)
          << m << "x" << n << " step " << t;
    }
    // With the same subspace and the same sign convention the runs differ by
    // the projectors' ~1e-5 times the updates (~1e-2 per step, 13 steps),
    // plus float32 rounding of W ~ 1; measured <= 1e-6.
    for (int64_t i = 0; i < m * n; ++i) EXPECT_NEAR(pr.data()[i], pe.data()[i], 1e-5) << m << "x" << n << " " << i;
  }
}

// ---- state ---------------------------------------------------------------------------------

TEST(Galore, StateLayoutMatchesRuleInfoAndIsSmallerThanAdamW) {
  ParamTable table;
  table.add("w", {64, 64});
  table.add("tall", {40, 24});
  table.add("wide", {24, 40});
  OptimConfig cfg = galore_config(16, 200);
  const ParamGroup group = whole_group(table, "galore", 0.0);
  Galore opt(Context{}, cfg, group, table, 0);
  EXPECT_EQ(static_cast<int64_t>(opt.state_bytes() / sizeof(float)), kGaloreRule.state_floats(cfg, group, table));
  EXPECT_STREQ(find_update_rule("galore").name, "galore");
  EXPECT_STREQ(update_rules()[0].name, "adamw");

  // 64 x 64 at rank 16: P (16, 64) + two (64, 16) moments = 3072 values (no
  // padding: multiples of 16), against AdamW's 2 * 64 * 64 = 8192.
  ParamTable square;
  square.add("w", {64, 64});
  const ParamGroup sq_group = whole_group(square, "galore", 0.0);
  EXPECT_EQ(kGaloreRule.state_floats(cfg, sq_group, square), 3 * 16 * 64);
  EXPECT_EQ(find_update_rule("adamw").state_floats(cfg, sq_group, square), 2 * 64 * 64);
  EXPECT_LT(2 * kGaloreRule.state_floats(cfg, sq_group, square),
            find_update_rule("adamw").state_floats(cfg, sq_group, square));

  struct Expected {
    const char* name;
    Shape shape;
  };
  const std::vector<Expected> expected = {
      {"w/projector", {16, 64}}, {"w/exp_avg", {64, 16}},     {"w/exp_avg_sq", {64, 16}},
      {"tall/projector", {16, 24}}, {"tall/exp_avg", {40, 16}}, {"tall/exp_avg_sq", {40, 16}},
      {"wide/projector", {24, 16}}, {"wide/exp_avg", {16, 40}}, {"wide/exp_avg_sq", {16, 40}},
  };
  const std::vector<StateTensor> tensors = opt.state_tensors();
  ASSERT_EQ(tensors.size(), expected.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    EXPECT_EQ(tensors[i].name, expected[i].name);
    EXPECT_EQ(tensors[i].shape, expected[i].shape) << expected[i].name;
  }
  ASSERT_EQ(opt.state_words().size(), 1u);
  EXPECT_EQ(opt.state_words()[0].name, "step");

  cfg.galore.svd = "randomized";
  Galore rand_opt(Context{}, cfg, group, table, 0);
  const std::vector<StateWord> words = rand_opt.state_words();
  ASSERT_EQ(words.size(), 7u) << "step and the sketch generator's six words";
  EXPECT_EQ(words[1].name, "rng/0");
  EXPECT_EQ(words[6].name, "rng/5");
}

TEST(Galore, DefaultGroupsOfAModelPlanTheMemoryTheyAllocate) {
  ParamTable table;
  table.add("model.embed_tokens.weight", {100, 32});
  table.add("model.layers.0.self_attn.q_proj.weight", {32, 32});
  table.add("model.layers.0.mlp.up_proj.weight", {86, 32});
  table.add("model.layers.0.mlp.down_proj.weight", {32, 86});
  table.add("model.layers.0.input_layernorm.weight", {32});
  OptimConfig cfg = galore_config(8, 200);
  auto opt = make_optimizer(Context{}, cfg, table, 0);
  const OptimizerMemory mem = plan_optimizer_memory(cfg, table);
  EXPECT_EQ(static_cast<int64_t>(opt->state_bytes() / sizeof(float)), mem.state_floats);
  ASSERT_FALSE(mem.groups.empty());
  EXPECT_EQ(mem.groups[0].group.optimizer, "galore");
  EXPECT_EQ(mem.groups[0].group.views.size(), 3u) << "the attention and MLP matrices";
  EXPECT_LT(mem.state_floats, mem.adamw_state_floats);
}

// Copies every state tensor and word of `from` into `to` (what a checkpoint does).
void copy_state(Optimizer& from, Optimizer& to) {
  const std::vector<StateTensor> src = from.state_tensors(), dst = to.state_tensors();
  ASSERT_EQ(src.size(), dst.size());
  for (size_t i = 0; i < src.size(); ++i) {
    ASSERT_EQ(src[i].name, dst[i].name);
    ASSERT_EQ(src[i].shape, dst[i].shape);
    std::memcpy(dst[i].data, src[i].data, sizeof(float) * static_cast<size_t>(src[i].numel));
  }
  const std::vector<StateWord> wsrc = from.state_words(), wdst = to.state_words();
  ASSERT_EQ(wsrc.size(), wdst.size());
  for (size_t i = 0; i < wsrc.size(); ++i) {
    ASSERT_EQ(wsrc[i].name, wdst[i].name);
    *wdst[i].value = *wsrc[i].value;
  }
}

TEST(Galore, RestoredMidRunContinuesBitIdentically) {
  for (const char* svd : {"exact", "randomized"}) {
    ParamTable table;
    table.add("tall", {24, 10});
    table.add("wide", {10, 24});
    OptimConfig cfg = galore_config(4, 5);
    cfg.galore.svd = svd;
    const ParamGroup group = whole_group(table, "galore", 0.1);
    Galore a(Context{}, cfg, group, table, /*seed=*/3);
    FlatBuffer pa(table), pb(table), g(table);
    Rng rng(17);
    for (const TensorView& v : table.views())
      for (int64_t i = 0; i < v.numel; ++i) pa.at(v)[i] = static_cast<float>(rng.normal());
    auto next_gradient = [&] {
      for (const TensorView& v : table.views()) gapped_gradient(g.at(v), int(v.shape[0]), int(v.shape[1]), rng);
    };
    for (int t = 0; t < 7; ++t) next_gradient(), a.step(pa, g, 1e-2);  // refreshes at 0 and 5

    // B is built from another seed: only the restored words can make its
    // sketches equal to A's.
    Galore b(Context{}, cfg, group, table, /*seed=*/99);
    copy_state(a, b);
    std::vector<uint64_t> words_at_restore;
    for (const StateWord& w : a.state_words()) words_at_restore.push_back(*w.value);
    std::memcpy(pb.data(), pa.data(), sizeof(float) * static_cast<size_t>(pa.numel()));
    for (int t = 7; t < 13; ++t) {  // across the refresh at 10
      next_gradient();
      a.step(pa, g, 1e-2 * (1 + 0.1 * t));
      b.step(pb, g, 1e-2 * (1 + 0.1 * t));
    }
    EXPECT_EQ(std::memcmp(pa.data(), pb.data(), sizeof(float) * static_cast<size_t>(pa.numel())), 0) << svd;
    const std::vector<StateTensor> sa = a.state_tensors(), sb = b.state_tensors();
    for (size_t i = 0; i < sa.size(); ++i)
      EXPECT_EQ(std::memcmp(sa[i].data, sb[i].data, sizeof(float) * static_cast<size_t>(sa[i].numel)), 0)
          << svd << " " << sa[i].name;
    EXPECT_EQ(a.step_count(), 13);
    EXPECT_EQ(b.step_count(), 13);
    // The refresh at 10 advanced the sketch generator (and the step word).
    const std::vector<StateWord> words = b.state_words();
    for (size_t i = 0; i < words.size(); ++i) {
      if (words[i].name == "rng/5") continue;  // the has-spare flag may well be the same
      EXPECT_NE(*words[i].value, words_at_restore[i]) << svd << " " << words[i].name;
    }
  }
}

// ---- errors ----------------------------------------------------------------------------------

TEST(Galore, RejectsATensorThatIsNotAMatrix) {
  ParamTable table;
  table.add("model.layers.0.self_attn.q_proj.weight", {16, 16});
  table.add("model.norm.weight", {16});
  OptimConfig cfg = galore_config(4, 200);
  ParamGroupRule everything;  // no `ndim: 2`: the norm weight lands in galore
  everything.optimizer = "galore";
  cfg.groups = {everything};
  for (int attempt = 0; attempt < 2; ++attempt) {
    try {
      if (attempt == 0) make_optimizer(Context{}, cfg, table, 0);
      else plan_optimizer_memory(cfg, table);  // the memory plan fails the same way, before allocating
      ADD_FAILURE() << "expected a ConfigError";
    } catch (const ConfigError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("model.norm.weight"), std::string::npos) << msg;
      EXPECT_NE(msg.find("(16,)"), std::string::npos) << msg;
      EXPECT_NE(msg.find("matrices"), std::string::npos) << msg;
      EXPECT_NE(msg.find("ndim: 2"), std::string::npos) << msg;
    }
  }
  // With ndim: 2 the norm weight falls through to the default optimizer.
  cfg.groups[0].ndim = 2;
  cfg.name = "adamw";
  EXPECT_NO_THROW(make_optimizer(Context{}, cfg, table, 0));
}

}  // namespace

// A rank whose projector and moments outweigh AdamW's two moments is no
// saving: refused, naming the tensor, its shape and the largest rank. On
// (24, 10): r (10 + 48) <= 480 holds up to r = 8; 10 (the smaller side, which
// is not above it) already costs 580 values against 480.
TEST(Galore, RankAboveTheMatrixIsRefused) {
  ParamTable table;
  table.add("w", {64, 64});
  table.add("narrow", {24, 10});
  const OptimConfig cfg = galore_config(16, 200);
  const ParamGroup group = whole_group(table, "galore", 0.0);
  try {
    Galore opt(Context{}, cfg, group, table, 0);
    FAIL() << "rank 16 on a (24, 10) matrix was accepted";
  } catch (const ConfigError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("optim.galore.rank 16"), std::string::npos) << msg;
    EXPECT_NE(msg.find("'narrow' of shape (24, 10)"), std::string::npos) << msg;
    EXPECT_NE(msg.find("optim.galore.rank <= 8 "), std::string::npos) << msg;
    EXPECT_NE(msg.find("would cost more memory than AdamW"), std::string::npos) << msg;
  }
  table = ParamTable();
  table.add("narrow", {24, 10});
  const ParamGroup narrow = whole_group(table, "galore", 0.0);
  EXPECT_THROW(Galore(Context{}, galore_config(9, 200), narrow, table, 0), ConfigError);
  EXPECT_NO_THROW(Galore(Context{}, galore_config(8, 200), narrow, table, 0));
}
