// The scalar math of the linear-attention feature maps, shared by the CPU
// body (runtime/cpu/linear_attention_pointwise.cpp) and the CUDA kernels
// (runtime/cuda/linear_attention_pointwise.cu): one definition, compiled for
// the host and, under nvcc, for the device. The exponential is std::exp on
// the host and expf on the device (a few ulp apart).
#pragma once

#include <cmath>

#include "runtime/ops.h"  // FeatureMap

#if defined(__CUDACC__)
#define LT_HOST_DEVICE __host__ __device__
#else
#define LT_HOST_DEVICE
#endif

namespace lintrain::feature_math {

LT_HOST_DEVICE inline float exp_f(float x) {
#if defined(__CUDA_ARCH__)
  return expf(x);
#else
  return std::exp(x);
#endif
}

LT_HOST_DEVICE inline float sigmoid(float x) { return 1.0f / (1.0f + exp_f(-x)); }

LT_HOST_DEVICE inline float feature(FeatureMap f, float x) {
  switch (f) {
    case FeatureMap::identity: return x;
    case FeatureMap::elu1: return x > 0.0f ? x + 1.0f : exp_f(x);
    case FeatureMap::silu: return x * sigmoid(x);
    case FeatureMap::relu: return x > 0.0f ? x : 0.0f;
  }
  return x;
}

// phi'(x) from the feature y = phi(x) (not for silu, whose derivative needs x).
// elu1: x > 0 <=> y > 1, and phi' = exp(x) = y for x <= 0 (continuous at 0, so
// rounding near the boundary is harmless).
LT_HOST_DEVICE inline float feature_grad_from_y(FeatureMap f, float y) {
  switch (f) {
    case FeatureMap::identity: return 1.0f;
    case FeatureMap::elu1: return y > 1.0f ? 1.0f : y;
    case FeatureMap::relu: return y > 0.0f ? 1.0f : 0.0f;
    case FeatureMap::silu: break;
  }
  return 1.0f;
}

LT_HOST_DEVICE inline float silu_grad(float x) {
  const float s = sigmoid(x);
  return s * (1.0f + x * (1.0f - s));
}

}  // namespace lintrain::feature_math
