// The per-token parts of a linear-attention layer on CUDA (the ops:
// runtime/ops.h). Features: one thread per element. Norm and gate: one
// thread per (token, head), summing the head's d values in index order in
// double like the CPU, so the two backends differ only by expf vs std::exp.
#include <cuda_runtime.h>

#include <cstdint>

#include "runtime/backend.h"
#include "runtime/cuda/check.h"
#include "runtime/feature_map_math.h"

namespace lintrain::cuda {

namespace {

constexpr int kThreads = 256;

int blocks_for(int64_t n) { return static_cast<int>(std::min<int64_t>((n + kThreads - 1) / kThreads, 65535 * 8)); }

using namespace feature_math;

__global__ void features_forward_kernel(float* feat, float* pre, const float* qkv, LinearAttentionLayout l) {
  const int64_t total = l.N * l.W;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t n = e / l.W;
    const int j = static_cast<int>(e % l.W);
    const float x = qkv[e];
    if (j < l.QK) {
      feat[e] = (j < l.Hd ? 1.0f : l.key_scale) * feature(l.feature_map, x);
      if (pre) pre[n * l.QK + j] = x;
    } else {
      feat[e] = x;
    }
  }
}

__global__ void features_backward_kernel(float* dqkv, const float* feat, const float* pre, LinearAttentionLayout l) {
  const int64_t total = l.N * l.QK;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t n = e / l.QK;
    const int j = static_cast<int>(e % l.QK);
    const float scale = j < l.Hd ? 1.0f : l.key_scale;
    const float grad = l.feature_map == FeatureMap::silu ? silu_grad(pre[e])
                                                         : feature_grad_from_y(l.feature_map, feat[n * l.W + j] / scale);
    dqkv[n * l.W + j] *= scale * grad;
  }
}

__global__ void output_forward_kernel(float* out, float* y, float* rstd, float* g_saved, const float* g,
                                      LinearAttentionLayout l) {
  const int64_t total = l.N * l.H;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t base = e * l.d;  // (n, h) -> n * Hd + h * d
    float* yh = y + base;
    if (rstd) {
      double ss = 0.0;
      for (int j = 0; j < l.d; ++j) ss += static_cast<double>(yh[j]) * yh[j];
      const float r = static_cast<float>(1.0 / sqrt(ss / l.d + l.eps));
      rstd[e] = r;
      for (int j = 0; j < l.d; ++j) yh[j] *= r;
    }
    for (int j = 0; j < l.d; ++j) {
      if (g) {
        const float gj = g[base + j];
        g_saved[base + j] = gj;
        out[base + j] = yh[j] * gj * sigmoid(gj);
      } else {
        out[base + j] = yh[j];
      }
    }
  }
}

__global__ void output_backward_kernel(float* dy, float* dg, const float* dout, const float* y, const float* rstd,
                                       const float* g_saved, LinearAttentionLayout l) {
  const int64_t total = l.N * l.H;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t base = e * l.d;
    for (int j = 0; j < l.d; ++j) {
      if (g_saved) {
        const float gs = g_saved[base + j];
        dy[base + j] = dout[base + j] * gs * sigmoid(gs);
        dg[base + j] = dout[base + j] * y[base + j] * silu_grad(gs);
      } else {
        dy[base + j] = dout[base + j];
      }
    }
    if (rstd) {
      double dot = 0.0;
      for (int j = 0; j < l.d; ++j) dot += static_cast<double>(dy[base + j]) * y[base + j];
      const float mean = static_cast<float>(dot / l.d);
      const float r = rstd[e];
      for (int j = 0; j < l.d; ++j) dy[base + j] = r * (dy[base + j] - y[base + j] * mean);
    }
  }
}

cudaStream_t as_stream(void* s) { return static_cast<cudaStream_t>(s); }

}  // namespace

void linear_attention_features_forward(void* stream, float* feat, float* pre, const float* qkv,
                                       const LinearAttentionLayout& l) {
  LT_CUDA_CHECK_LAUNCH((features_forward_kernel<<<blocks_for(l.N * l.W), kThreads, 0, as_stream(stream)>>>(
      feat, pre, qkv, l)));
}

void linear_attention_features_backward(void* stream, float* dqkv, const float* feat, const float* pre,
                                        const LinearAttentionLayout& l) {
  LT_CUDA_CHECK_LAUNCH((features_backward_kernel<<<blocks_for(l.N * l.QK), kThreads, 0, as_stream(stream)>>>(
      dqkv, feat, pre, l)));
}

void linear_attention_output_forward(void* stream, float* out, float* y, float* rstd, float* g_saved,
                                     const float* g, const LinearAttentionLayout& l) {
  LT_CUDA_CHECK_LAUNCH((output_forward_kernel<<<blocks_for(l.N * l.H), kThreads, 0, as_stream(stream)>>>(
      out, y, rstd, g_saved, g, l)));
}

void linear_attention_output_backward(void* stream, float* dy, float* dg, const float* dout, const float* y,
                                      const float* rstd, const float* g_saved, const LinearAttentionLayout& l) {
  LT_CUDA_CHECK_LAUNCH((output_backward_kernel<<<blocks_for(l.N * l.H), kThreads, 0, as_stream(stream)>>>(
      dy, dg, dout, y, rstd, g_saved, l)));
}

}  // namespace lintrain::cuda
