// The per-token parts of a linear-attention layer on the CPU (the ops:
// runtime/ops.h): the feature map on q|k before the kernel, the per-head
// output norm and the output gate after it, and their gradients. One thread
// per token row; per-row sums in double in index order: results do not depend
// on the thread count.
#include <cmath>
#include <cstring>

#include "runtime/backend.h"
#include "runtime/feature_map_math.h"

namespace lintrain::cpu {

using namespace feature_math;

void linear_attention_features_forward(float* feat, float* pre, const float* qkv, const LinearAttentionLayout& l) {
  const int W = l.W, Hd = l.Hd, QK = l.QK;
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < l.N; ++n) {
    const float* x = qkv + n * W;
    float* f = feat + n * W;
    for (int j = 0; j < QK; ++j) {
      const float scale = j < Hd ? 1.0f : l.key_scale;
      f[j] = scale * feature(l.feature_map, x[j]);
    }
    std::memcpy(f + QK, x + QK, static_cast<size_t>(W - QK) * sizeof(float));
    if (pre) std::memcpy(pre + n * QK, x, static_cast<size_t>(QK) * sizeof(float));
  }
}

void linear_attention_features_backward(float* dqkv, const float* feat, const float* pre,
                                        const LinearAttentionLayout& l) {
  const int W = l.W, Hd = l.Hd, QK = l.QK;
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < l.N; ++n) {
    float* dx = dqkv + n * W;
    const float* f = feat + n * W;
    for (int j = 0; j < QK; ++j) {
      const float scale = j < Hd ? 1.0f : l.key_scale;
      const float grad = l.feature_map == FeatureMap::silu ? silu_grad(pre[n * QK + j])
                                                           : feature_grad_from_y(l.feature_map, f[j] / scale);
      dx[j] *= scale * grad;
    }
  }
}

void linear_attention_output_forward(float* out, float* y, float* rstd, float* g_saved, const float* g,
                                     const LinearAttentionLayout& l) {
  const int Hd = l.Hd, H = l.H, d = l.d;
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < l.N; ++n) {
    float* yn = y + n * Hd;
    if (rstd) {
      for (int h = 0; h < H; ++h) {
        float* yh = yn + h * d;
        double ss = 0.0;  // double: a d-term sum of squares, no cancellation worries
        for (int j = 0; j < d; ++j) ss += static_cast<double>(yh[j]) * yh[j];
        const float r = static_cast<float>(1.0 / std::sqrt(ss / d + l.eps));
        rstd[n * H + h] = r;
        for (int j = 0; j < d; ++j) yh[j] *= r;
      }
    }
    float* o = out + n * Hd;
    if (g) {
      const float* gn = g + n * Hd;
      float* gs = g_saved + n * Hd;
      for (int j = 0; j < Hd; ++j) {
        gs[j] = gn[j];
        o[j] = yn[j] * gn[j] * sigmoid(gn[j]);
      }
    } else {
      std::memcpy(o, yn, static_cast<size_t>(Hd) * sizeof(float));
    }
  }
}

void linear_attention_output_backward(float* dy, float* dg, const float* dout, const float* y, const float* rstd,
                                      const float* g_saved, const LinearAttentionLayout& l) {
  const int Hd = l.Hd, H = l.H, d = l.d;
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < l.N; ++n) {
    const float* yn = y + n * Hd;
    const float* dn = dout + n * Hd;
    float* dyn = dy + n * Hd;
    if (g_saved) {
      const float* gs = g_saved + n * Hd;
      float* dgn = dg + n * Hd;
      for (int j = 0; j < Hd; ++j) {
        dyn[j] = dn[j] * gs[j] * sigmoid(gs[j]);
        dgn[j] = dn[j] * yn[j] * silu_grad(gs[j]);
      }
    } else {
      std::memcpy(dyn, dn, static_cast<size_t>(Hd) * sizeof(float));
    }
    if (rstd) {
      // y = x r, r = (mean(x^2) + eps)^(-1/2):  dx = r (dy - y mean(dy .* y))
      for (int h = 0; h < H; ++h) {
        const float* yh = yn + h * d;
        float* dyh = dyn + h * d;
        double dot = 0.0;
        for (int j = 0; j < d; ++j) dot += static_cast<double>(dyh[j]) * yh[j];
        const float mean = static_cast<float>(dot / d);
        const float r = rstd[n * H + h];
        for (int j = 0; j < d; ++j) dyh[j] = r * (dyh[j] - yh[j] * mean);
      }
    }
  }
}

}  // namespace lintrain::cpu
