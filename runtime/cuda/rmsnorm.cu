// RMSNorm on CUDA (the op: runtime/ops.h). One block per row for the
// statistics and the input gradient; the weight gradient is summed over
// fixed row chunks into scratch and the chunks added in order, the CPU's
// scheme, so it is deterministic.
#include <cuda_runtime.h>

#include "runtime/arena.h"
#include "runtime/backend.h"
#include "runtime/cuda/check.h"

namespace lintrain::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kRowsPerChunk = 256;
int row_chunks(int N) { return (N + kRowsPerChunk - 1) / kRowsPerChunk; }

// Sum of v over the block (kThreads threads); every thread gets the total.
__device__ float block_sum(float v) {
  __shared__ float warp_sums[kThreads / 32];
  for (int off = 16; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  float total = 0.0f;
  for (int w = 0; w < kThreads / 32; ++w) total += warp_sums[w];
  __syncthreads();  // warp_sums is reused by the next call
  return total;
}

__global__ void rmsnorm_forward_kernel(float* out, float* rstd, const float* inp, const float* weight, int C,
                                       float eps) {
  const float* x = inp + static_cast<int64_t>(blockIdx.x) * C;
  float* y = out + static_cast<int64_t>(blockIdx.x) * C;
  float ss = 0.0f;
  for (int c = threadIdx.x; c < C; c += kThreads) ss += x[c] * x[c];
  const float r = rsqrtf(block_sum(ss) / C + eps);
  if (threadIdx.x == 0) rstd[blockIdx.x] = r;
  for (int c = threadIdx.x; c < C; c += kThreads) y[c] = x[c] * r * (weight ? weight[c] : 1.0f);
}

// dx_j += r * (w_j dy_j - x_j r^2 mean_i(dy_i w_i x_i))
__global__ void rmsnorm_dinp_kernel(float* dinp, const float* dout, const float* inp, const float* weight,
                                    const float* rstd, int C) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * C;
  const float* x = inp + row;
  const float* dy = dout + row;
  float* dx = dinp + row;
  const float r = rstd[blockIdx.x];
  float dot = 0.0f;
  for (int c = threadIdx.x; c < C; c += kThreads) dot += dy[c] * (weight ? weight[c] : 1.0f) * x[c];
  const float k = block_sum(dot) / C * r * r;
  for (int c = threadIdx.x; c < C; c += kThreads) dx[c] += r * ((weight ? weight[c] : 1.0f) * dy[c] - x[c] * k);
}

// partial[chunk, c] = sum over the chunk's rows of dout * inp * rstd.
__global__ void rmsnorm_dweight_partial_kernel(float* partial, const float* dout, const float* inp,
                                               const float* rstd, int N, int C) {
  const int c = blockIdx.y * kThreads + threadIdx.x;
  if (c >= C) return;
  const int n0 = blockIdx.x * kRowsPerChunk, n1 = min(n0 + kRowsPerChunk, N);
  float acc = 0.0f;
  for (int n = n0; n < n1; ++n) acc += dout[static_cast<int64_t>(n) * C + c] * inp[static_cast<int64_t>(n) * C + c] * rstd[n];
  partial[static_cast<int64_t>(blockIdx.x) * C + c] = acc;
}

__global__ void rmsnorm_dweight_sum_kernel(float* dweight, const float* partial, int nchunks, int C) {
  const int c = blockIdx.x * kThreads + threadIdx.x;
  if (c >= C) return;
  float acc = dweight[c];
  for (int ch = 0; ch < nchunks; ++ch) acc += partial[static_cast<int64_t>(ch) * C + c];
  dweight[c] = acc;
}

}  // namespace

size_t rmsnorm_backward_scratch_bytes(int N, int C) {
  return arena_round(static_cast<size_t>(row_chunks(N)) * C * sizeof(float));
}

void rmsnorm_forward(void* stream, float* out, float* rstd, const float* inp, const float* weight, int N, int C,
                     float eps) {
  if (N == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  LT_CUDA_CHECK_LAUNCH((rmsnorm_forward_kernel<<<N, kThreads, 0, s>>>(out, rstd, inp, weight, C, eps)));
}

void rmsnorm_backward(void* stream, Arena& arena, float* dinp, float* dweight, const float* dout,
                      const float* inp, const float* weight, const float* rstd, int N, int C) {
  if (N == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  LT_CUDA_CHECK_LAUNCH((rmsnorm_dinp_kernel<<<N, kThreads, 0, s>>>(dinp, dout, inp, weight, rstd, C)));
  if (!dweight) return;
  const int nchunks = row_chunks(N), col_blocks = (C + kThreads - 1) / kThreads;
  ScratchScope scratch(arena);
  float* partial = scratch.take<float>(static_cast<size_t>(nchunks) * C, "rmsnorm_backward");
  LT_CUDA_CHECK_LAUNCH((rmsnorm_dweight_partial_kernel<<<dim3(nchunks, col_blocks), kThreads, 0, s>>>(
      partial, dout, inp, rstd, N, C)));
  LT_CUDA_CHECK_LAUNCH((rmsnorm_dweight_sum_kernel<<<col_blocks, kThreads, 0, s>>>(dweight, partial, nchunks, C)));
}

}  // namespace lintrain::cuda
