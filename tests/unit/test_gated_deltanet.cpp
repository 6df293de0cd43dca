// The float64 reference of the gated delta rule (tests/unit/gated_delta_ref.h),
// the base the chunkwise Gated DeltaNet op will be tested against: its
// back-propagation through time against central finite differences of the
// recurrence itself (every input, the initial state, gates near 0 and 1, GQA),
// and the recurrence against what the delta rule is defined to do.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "tests/unit/gated_delta_ref.h"

using namespace lintrain::test;

namespace {

struct Inputs {
  Vec q, k, v, lg, beta, state, dout, dstate;
};

// k rows L2-normalised, as the model feeds them; lg = log(a) with a in
// [a_lo, a_hi]; beta in (0, 1).
Inputs random_inputs(const RefShape& s, double a_lo, double a_hi, unsigned seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<double> n01(0.0, 1.0);
  std::uniform_real_distribution<double> ua(a_lo, a_hi), ub(0.05, 0.95);
  Inputs x;
  const size_t rows_q = static_cast<size_t>(s.B) * s.T * s.H, rows_k = static_cast<size_t>(s.B) * s.T * s.KVH;
  auto fill = [&](Vec& v, size_t n) {
    v.resize(n);
    for (double& e : v) e = n01(gen);
  };
  fill(x.q, rows_q * s.d);
  fill(x.k, rows_k * s.d);
  fill(x.v, rows_k * s.d);
  for (size_t r = 0; r < rows_k; ++r) {
    double nn = 0;
    for (int i = 0; i < s.d; ++i) nn += x.k[r * s.d + i] * x.k[r * s.d + i];
    for (int i = 0; i < s.d; ++i) x.k[r * s.d + i] /= std::sqrt(nn);
  }
  x.lg.resize(rows_q);
  x.beta.resize(rows_q);
  for (size_t r = 0; r < rows_q; ++r) {
    x.lg[r] = std::log(ua(gen));
    x.beta[r] = ub(gen);
  }
  fill(x.state, static_cast<size_t>(s.B) * s.H * s.d * s.d);
  fill(x.dout, rows_q * s.d);
  fill(x.dstate, x.state.size());
  return x;
}

double loss(const RefShape& s, const Inputs& x) {
  Vec o, st;
  ref_gated_delta(s, x.q, x.k, x.v, x.lg, x.beta, x.state.data(), o, &st);
  double l = 0;
  for (size_t i = 0; i < o.size(); ++i) l += o[i] * x.dout[i];
  for (size_t i = 0; i < st.size(); ++i) l += st[i] * x.dstate[i];
  return l;
}

// Every entry of one input against a central difference (step 1e-6: the
// recurrence is a polynomial of low degree in each entry, so the error is
// round-off, ~1e-9 relative here).
void expect_gradient(const RefShape& s, Inputs x, Vec Inputs::*field, const Vec& analytic, const char* what) {
  Vec& in = x.*field;
  ASSERT_EQ(in.size(), analytic.size()) << what;
  double worst = 0, scale = 1e-12;
  for (size_t i = 0; i < in.size(); ++i) {
    const double keep = in[i], h = 1e-6;
    in[i] = keep + h;
    const double up = loss(s, x);
    in[i] = keep - h;
    const double down = loss(s, x);
    in[i] = keep;
    const double fd = (up - down) / (2 * h);
    worst = std::max(worst, std::abs(fd - analytic[i]));
    scale = std::max(scale, std::abs(analytic[i]));
  }
  EXPECT_LT(worst / scale, 1e-6) << what << ": worst |fd - analytic| " << worst << " of max " << scale;
}

void check_all_gradients(const RefShape& s, double a_lo, double a_hi, unsigned seed) {
  const Inputs x = random_inputs(s, a_lo, a_hi, seed);
  Vec o, st;
  GatedDeltaGrads g;
  ref_gated_delta(s, x.q, x.k, x.v, x.lg, x.beta, x.state.data(), o, &st, &x.dout, x.dstate.data(), &g);
  expect_gradient(s, x, &Inputs::q, g.dq, "dq");
  expect_gradient(s, x, &Inputs::k, g.dk, "dk");
  expect_gradient(s, x, &Inputs::v, g.dv, "dv");
  expect_gradient(s, x, &Inputs::lg, g.dlg, "dlg");
  expect_gradient(s, x, &Inputs::beta, g.dbeta, "dbeta");
  expect_gradient(s, x, &Inputs::state, g.dstate_in, "dstate_in");
}

TEST(GatedDeltaRef, GradientsMatchFiniteDifferences) { check_all_gradients({2, 7, 2, 2, 4}, 0.3, 0.99, 1); }
TEST(GatedDeltaRef, GradientsWithGatesNearOne) { check_all_gradients({1, 9, 2, 1, 3}, 0.999, 1.0, 2); }
TEST(GatedDeltaRef, GradientsWithGatesNearZero) { check_all_gradients({1, 6, 2, 2, 3}, 1e-4, 1e-2, 3); }
TEST(GatedDeltaRef, GradientsWithGroupedKeys) { check_all_gradients({1, 5, 4, 2, 3}, 0.5, 0.95, 4); }

// With a = 1 and b = 1 a write replaces what the state held for a unit key:
// k S_t = v_t afterwards, and a key orthogonal to it reads what it read before.
TEST(GatedDeltaRef, AFullWriteReplacesTheValueOfItsKey) {
  const RefShape s{1, 1, 1, 1, 3};
  Vec q = {1, 0, 0}, k = {1, 0, 0}, v = {0.5, -2, 3}, lg = {0.0}, beta = {1.0};
  const double S0[9] = {7, 8, 9, 1, 2, 3, 4, 5, 6};
  Vec o, st;
  ref_gated_delta(s, q, k, v, lg, beta, S0, o, &st);
  for (int j = 0; j < 3; ++j) {
    EXPECT_DOUBLE_EQ(o[j], v[j]);          // q = k reads the new value, not 7 8 9 + v
    EXPECT_DOUBLE_EQ(st[3 + j], S0[3 + j]);  // rows of keys orthogonal to k are untouched
    EXPECT_DOUBLE_EQ(st[6 + j], S0[6 + j]);
  }
}

// With b = 0 nothing is written: the state only decays, S_T = prod(a) S_0.
TEST(GatedDeltaRef, NoWriteOnlyDecays) {
  const RefShape s{1, 4, 1, 1, 2};
  Inputs x = random_inputs(s, 0.5, 0.9, 5);
  double prod = 1;
  for (double& b : x.beta) b = 0;
  for (double l : x.lg) prod *= std::exp(l);
  Vec o, st;
  ref_gated_delta(s, x.q, x.k, x.v, x.lg, x.beta, x.state.data(), o, &st);
  for (size_t e = 0; e < st.size(); ++e) EXPECT_NEAR(st[e], prod * x.state[e], 1e-14);
}

}  // namespace
