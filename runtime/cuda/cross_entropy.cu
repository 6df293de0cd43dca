// Cross-entropy over rows of logits on CUDA (the op: runtime/ops.h): one
// block per row. The maximum (first index on ties, like the CPU's scan) and
// the double sum of exp(z - max) are block reductions in a fixed tree order,
// so results are deterministic; they differ from the CPU's index-order sum
// by rounding only.
#include <cuda_runtime.h>

#include <cstdint>

#include "runtime/backend.h"
#include "runtime/cuda/check.h"

namespace lintrain::cuda {

namespace {

constexpr int kThreads = 256;

__global__ void cross_entropy_rows_kernel(float* logits, double* row_loss, int32_t* row_correct,
                                          const int32_t* targets, int V, float grad_scale, bool want_grad) {
  __shared__ float s_max[kThreads];
  __shared__ int s_arg[kThreads];
  __shared__ double s_sum[kThreads];
  float* z = logits + static_cast<int64_t>(blockIdx.x) * V;
  const int t = targets[blockIdx.x];
  // Maximum and its first index: each thread scans a strided slice in order.
  float m = -INFINITY;
  int arg = V;
  for (int v = threadIdx.x; v < V; v += kThreads) {
    const float x = z[v];
    if (arg == V || x > m) m = x, arg = v;
  }
  s_max[threadIdx.x] = m;
  s_arg[threadIdx.x] = arg;
  __syncthreads();
  for (int stride = kThreads / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) {
      const float om = s_max[threadIdx.x + stride];
      const int oa = s_arg[threadIdx.x + stride];
      if (om > s_max[threadIdx.x] || (om == s_max[threadIdx.x] && oa < s_arg[threadIdx.x]))
        s_max[threadIdx.x] = om, s_arg[threadIdx.x] = oa;
    }
    __syncthreads();
  }
  const float zmax = s_max[0];
  const int amax = s_arg[0];
  double sum = 0.0;
  for (int v = threadIdx.x; v < V; v += kThreads) sum += exp(static_cast<double>(z[v] - zmax));
  s_sum[threadIdx.x] = sum;
  __syncthreads();
  for (int stride = kThreads / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) s_sum[threadIdx.x] += s_sum[threadIdx.x + stride];
    __syncthreads();
  }
  const double lse = zmax + log(s_sum[0]);
  if (threadIdx.x == 0) {
    row_loss[blockIdx.x] = t >= 0 ? lse - z[t] : 0.0;
    row_correct[blockIdx.x] = t >= 0 && amax == t;
  }
  __syncthreads();  // z[t] is read above before the gradient overwrites it
  if (!want_grad) return;
  for (int v = threadIdx.x; v < V; v += kThreads) {
    if (t < 0) {
      z[v] = 0.0f;
    } else {
      const float p = grad_scale * static_cast<float>(exp(static_cast<double>(z[v]) - lse));
      z[v] = v == t ? p - grad_scale : p;
    }
  }
}

}  // namespace

void cross_entropy_rows(void* stream, float* logits, double* row_loss, int32_t* row_correct,
                        const int32_t* targets, int rows, int V, float grad_scale, bool want_grad) {
  if (rows == 0) return;
  LT_CUDA_CHECK_LAUNCH((cross_entropy_rows_kernel<<<rows, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      logits, row_loss, row_correct, targets, V, grad_scale, want_grad)));
}

}  // namespace lintrain::cuda
