// Float64 references for gated linear attention: the token-by-token
// recurrence of runtime/ops_gla.h and its gradient by back-propagation through
// time, written from the definition (no blocks, no cumulative sums), so the
// chunkwise kernel is checked against the recurrence and not against a
// rearrangement of itself.
#pragma once

#include <cmath>
#include <vector>

#include "tests/unit/linear_attention_ref.h"  // RefShape, Vec

namespace lintrain::test {

struct GlaGrads {
  Vec dq, dk, dv, dlg, dstate_in;
};

// Dense layouts: q, lg, o (B, T, H, d); k, v (B, T, KVH, d); states (B, H, d, d).
//   S_t = diag(exp(lg_t)) S_{t-1} + k_t^T v_t,  o_t = q_t S_t.
// With `grads`: the gradient of sum(o .* dout) + sum(S_T .* dstate_out)
// (dstate_out may be null).
inline void ref_gla(const RefShape& s, const Vec& q, const Vec& k, const Vec& v, const Vec& lg,
                    const double* state_in, Vec& o, Vec* state_out, const Vec* dout = nullptr,
                    const double* dstate_out = nullptr, GlaGrads* grads = nullptr) {
  const int d = s.d, G = s.H / s.KVH, T = s.T;
  const size_t dd = static_cast<size_t>(d) * d;
  o.assign(static_cast<size_t>(s.B) * T * s.H * d, 0.0);
  if (state_out) state_out->assign(static_cast<size_t>(s.B) * s.H * dd, 0.0);
  if (grads) {
    grads->dq.assign(q.size(), 0.0);
    grads->dk.assign(k.size(), 0.0);
    grads->dv.assign(v.size(), 0.0);
    grads->dlg.assign(lg.size(), 0.0);
    grads->dstate_in.assign(static_cast<size_t>(s.B) * s.H * dd, 0.0);
  }
  std::vector<Vec> states(static_cast<size_t>(T) + 1, Vec(dd));  // states[t] = S after t tokens
  for (int b = 0; b < s.B; ++b)
    for (int h = 0; h < s.H; ++h) {
      const int g = h / G;
      const size_t bh = static_cast<size_t>(b) * s.H + h;
      auto qv = [&](int t, int i) { return q[((static_cast<size_t>(b) * T + t) * s.H + h) * d + i]; };
      auto kv = [&](int t, int i) { return k[((static_cast<size_t>(b) * T + t) * s.KVH + g) * d + i]; };
      auto vv = [&](int t, int i) { return v[((static_cast<size_t>(b) * T + t) * s.KVH + g) * d + i]; };
      auto gv = [&](int t, int i) { return lg[((static_cast<size_t>(b) * T + t) * s.H + h) * d + i]; };
      for (size_t e = 0; e < dd; ++e) states[0][e] = state_in ? state_in[bh * dd + e] : 0.0;
      for (int t = 0; t < T; ++t) {
        const Vec& P = states[t];
        Vec& S = states[t + 1];
        for (int i = 0; i < d; ++i)
          for (int j = 0; j < d; ++j)
            S[i * d + j] = std::exp(gv(t, i)) * P[i * d + j] + kv(t, i) * vv(t, j);
        double* ot = &o[((static_cast<size_t>(b) * T + t) * s.H + h) * d];
        for (int j = 0; j < d; ++j) {
          double acc = 0.0;
          for (int i = 0; i < d; ++i) acc += qv(t, i) * S[i * d + j];
          ot[j] = acc;
        }
      }
      if (state_out) std::copy(states[T].begin(), states[T].end(), state_out->begin() + bh * dd);
      if (!grads) continue;
      Vec dS(dd, 0.0);
      if (dstate_out)
        for (size_t e = 0; e < dd; ++e) dS[e] = dstate_out[bh * dd + e];
      for (int t = T - 1; t >= 0; --t) {
        const size_t qrow = ((static_cast<size_t>(b) * T + t) * s.H + h) * d;
        const size_t krow = ((static_cast<size_t>(b) * T + t) * s.KVH + g) * d;
        const double* dot_ = &(*dout)[qrow];
        for (int i = 0; i < d; ++i)
          for (int j = 0; j < d; ++j) dS[i * d + j] += qv(t, i) * dot_[j];  // o_t = q_t S_t
        const Vec& S = states[t + 1];
        const Vec& P = states[t];
        for (int i = 0; i < d; ++i) {
          double dq = 0.0, dk = 0.0, dv = 0.0, da = 0.0;
          for (int j = 0; j < d; ++j) {
            dq += dot_[j] * S[i * d + j];
            dk += dS[i * d + j] * vv(t, j);
            dv += kv(t, j) * dS[j * d + i];
            da += dS[i * d + j] * P[i * d + j];
          }
          grads->dq[qrow + i] = dq;
          grads->dk[krow + i] += dk;
          grads->dv[krow + i] += dv;
          grads->dlg[qrow + i] = std::exp(gv(t, i)) * da;  // d/d lg of exp(lg) S_{t-1}
        }
        for (int i = 0; i < d; ++i)
          for (int j = 0; j < d; ++j) dS[i * d + j] *= std::exp(gv(t, i));
      }
      std::copy(dS.begin(), dS.end(), grads->dstate_in.begin() + bh * dd);
    }
}

}  // namespace lintrain::test
