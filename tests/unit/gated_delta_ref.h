// Float64 reference for the gated delta rule (Gated DeltaNet, Yang, Kautz and
// Hatamizadeh 2024): the token-by-token recurrence and its gradient by
// back-propagation through time, written from the definition (no chunks, no
// WY/UT form), so the chunkwise op to come is checked against the recurrence
// and not against a rearrangement of itself. The derivation of the adjoint is
// in docs/gated_linear_attention.md ("Gated DeltaNet").
#pragma once

#include <cmath>
#include <vector>

#include "tests/unit/linear_attention_ref.h"  // RefShape, Vec

namespace lintrain::test {

struct GatedDeltaGrads {
  Vec dq, dk, dv, dlg, dbeta, dstate_in;
};

// Dense layouts: q, o (B, T, H, d); k, v (B, T, KVH, d); lg, beta (B, T, H)
// (one log-gate and one write strength per token and query head); states
// (B, H, d, d), S indexed [key dim][value dim]. With row vectors q_t, k_t, v_t:
//   S_t = a_t (I - b_t k_t^T k_t) S_{t-1} + b_t k_t^T v_t,   o_t = q_t S_t,
// a_t = exp(lg_t), b_t = beta_t. (The model L2-normalises q and k and scales
// q; the recurrence takes them as given.) With `grads`: the gradient of
// sum(o .* dout) + sum(S_T .* dstate_out) (dstate_out may be null).
inline void ref_gated_delta(const RefShape& s, const Vec& q, const Vec& k, const Vec& v, const Vec& lg,
                            const Vec& beta, const double* state_in, Vec& o, Vec* state_out,
                            const Vec* dout = nullptr, const double* dstate_out = nullptr,
                            GatedDeltaGrads* grads = nullptr) {
  const int d = s.d, G = s.H / s.KVH, T = s.T;
  const size_t dd = static_cast<size_t>(d) * d;
  o.assign(static_cast<size_t>(s.B) * T * s.H * d, 0.0);
  if (state_out) state_out->assign(static_cast<size_t>(s.B) * s.H * dd, 0.0);
  if (grads) {
    grads->dq.assign(q.size(), 0.0);
    grads->dk.assign(k.size(), 0.0);
    grads->dv.assign(v.size(), 0.0);
    grads->dlg.assign(lg.size(), 0.0);
    grads->dbeta.assign(beta.size(), 0.0);
    grads->dstate_in.assign(static_cast<size_t>(s.B) * s.H * dd, 0.0);
  }
  std::vector<Vec> states(static_cast<size_t>(T) + 1, Vec(dd));  // states[t] = S after t tokens
  for (int b = 0; b < s.B; ++b)
    for (int h = 0; h < s.H; ++h) {
      const int g = h / G;
      const size_t bh = static_cast<size_t>(b) * s.H + h;
      auto qi = [&](int t, int i) { return ((static_cast<size_t>(b) * T + t) * s.H + h) * d + i; };
      auto ki = [&](int t, int i) { return ((static_cast<size_t>(b) * T + t) * s.KVH + g) * d + i; };
      auto gi = [&](int t) { return (static_cast<size_t>(b) * T + t) * s.H + h; };
      for (size_t e = 0; e < dd; ++e) states[0][e] = state_in ? state_in[bh * dd + e] : 0.0;
      for (int t = 0; t < T; ++t) {
        const Vec& P = states[t];
        Vec& S = states[t + 1];
        const double a = std::exp(lg[gi(t)]), bt = beta[gi(t)];
        for (int j = 0; j < d; ++j) {
          double u = 0;  // (k_t S_{t-1})_j
          for (int m = 0; m < d; ++m) u += k[ki(t, m)] * P[static_cast<size_t>(m) * d + j];
          for (int i = 0; i < d; ++i)
            S[static_cast<size_t>(i) * d + j] =
                a * (P[static_cast<size_t>(i) * d + j] - bt * k[ki(t, i)] * u) + bt * k[ki(t, i)] * v[ki(t, j)];
        }
        for (int j = 0; j < d; ++j) {
          double acc = 0;
          for (int i = 0; i < d; ++i) acc += q[qi(t, i)] * S[static_cast<size_t>(i) * d + j];
          o[qi(t, j)] = acc;
        }
      }
      if (state_out)
        for (size_t e = 0; e < dd; ++e) (*state_out)[bh * dd + e] = states[T][e];
      if (!grads) continue;
      // Backward through time. dS holds d(loss)/dS_t while step t is undone.
      Vec dS(dd), dP(dd), u(d), w(d);
      for (size_t e = 0; e < dd; ++e) dS[e] = dstate_out ? dstate_out[bh * dd + e] : 0.0;
      for (int t = T - 1; t >= 0; --t) {
        const Vec& S = states[t + 1];
        const Vec& Sp = states[t];
        // o_t = q_t S_t: dS_t += q_t^T dout_t, dq_t = dout_t S_t^T.
        for (int i = 0; i < d; ++i) {
          double acc = 0;
          for (int j = 0; j < d; ++j) {
            dS[static_cast<size_t>(i) * d + j] += q[qi(t, i)] * (*dout)[qi(t, j)];
            acc += (*dout)[qi(t, j)] * S[static_cast<size_t>(i) * d + j];
          }
          grads->dq[qi(t, i)] += acc;
        }
        // S_t = a P + b k^T v with P = A S_{t-1}, A = I - b k^T k (symmetric).
        const double a = std::exp(lg[gi(t)]), bt = beta[gi(t)];
        for (int j = 0; j < d; ++j) {
          u[j] = 0;
          for (int m = 0; m < d; ++m) u[j] += k[ki(t, m)] * Sp[static_cast<size_t>(m) * d + j];
        }
        double dlog_a = 0, db = 0;
        for (int i = 0; i < d; ++i)
          for (int j = 0; j < d; ++j) {
            const size_t e = static_cast<size_t>(i) * d + j;
            const double Pij = Sp[e] - bt * k[ki(t, i)] * u[j];
            dlog_a += dS[e] * a * Pij;                 // d/d lg of a = exp(lg): a * <dS, P>
            db += dS[e] * k[ki(t, i)] * v[ki(t, j)];   // from b k^T v
            dP[e] = a * dS[e];
          }
        for (int i = 0; i < d; ++i) {  // dv = b k dS, dk += b dS v^T (the write)
          double dk_acc = 0;
          for (int j = 0; j < d; ++j) dk_acc += dS[static_cast<size_t>(i) * d + j] * v[ki(t, j)];
          grads->dk[ki(t, i)] += bt * dk_acc;
        }
        for (int j = 0; j < d; ++j) {
          double acc = 0;
          for (int i = 0; i < d; ++i) acc += k[ki(t, i)] * dS[static_cast<size_t>(i) * d + j];
          grads->dv[ki(t, j)] += bt * acc;
          w[j] = 0;  // (k dP)_j
          for (int i = 0; i < d; ++i) w[j] += k[ki(t, i)] * dP[static_cast<size_t>(i) * d + j];
        }
        // P = S_{t-1} - b k^T (k S_{t-1}):
        //   db -= k dP u^T;  dk -= b (dP u^T + S_{t-1} dP^T k^T);  dS_{t-1} = A dP.
        for (int i = 0; i < d; ++i) {
          double dPu = 0, SdPk = 0;
          for (int j = 0; j < d; ++j) {
            dPu += dP[static_cast<size_t>(i) * d + j] * u[j];
            SdPk += Sp[static_cast<size_t>(i) * d + j] * w[j];
          }
          db -= k[ki(t, i)] * dPu;
          grads->dk[ki(t, i)] -= bt * (dPu + SdPk);
        }
        for (int i = 0; i < d; ++i)
          for (int j = 0; j < d; ++j)
            dS[static_cast<size_t>(i) * d + j] = dP[static_cast<size_t>(i) * d + j] - bt * k[ki(t, i)] * w[j];
        grads->dlg[gi(t)] += dlog_a;
        grads->dbeta[gi(t)] += db;
      }
      for (size_t e = 0; e < dd; ++e) grads->dstate_in[bh * dd + e] = dS[e];
    }
}

}  // namespace lintrain::test
