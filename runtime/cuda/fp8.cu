// FP8 conversions on CUDA (the ops: runtime/ops.h, "FP8 numerics"). Every
// value goes through runtime/fp8_math.h, the CPU body's scalar code, so codes,
// scales and counts are bit for bit the CPU's; counts are integer atomics and
// amaxes maxima, so they do not depend on the launch either.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "runtime/arena.h"
#include "runtime/backend.h"
#include "runtime/cuda/check.h"
#include "runtime/fp8_math.h"

namespace lintrain::cuda {

namespace {

constexpr int kThreads = 256;  // a multiple of the warp size (block_reduce needs it)

cudaStream_t as_stream(void* s) { return static_cast<cudaStream_t>(s); }

unsigned grid_for(int64_t n) {
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>((n + kThreads - 1) / kThreads, 65535 * 8)));
}

struct MaxOp {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};
struct SumOp {
  __device__ unsigned long long operator()(unsigned long long a, unsigned long long b) const { return a + b; }
};

// Every thread of the block gets op over the block's values.
template <typename T, typename Op>
__device__ T block_reduce(T v, Op op) {
  __shared__ T warp_vals[kThreads / 32];
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  __syncthreads();  // a previous call's readers are done with warp_vals
  if ((threadIdx.x & 31) == 0) warp_vals[threadIdx.x >> 5] = v;
  __syncthreads();
  v = warp_vals[0];
  for (int w = 1; w < kThreads / 32; ++w) v = op(v, warp_vals[w]);
  return v;
}

struct LostCounts {
  unsigned long long sat = 0, flushed = 0, nonfinite = 0;
  __device__ void add(uint32_t lost) {
    sat += (lost & fp8_math::kLostSaturated) != 0;
    flushed += (lost & fp8_math::kLostFlushed) != 0;
    nonfinite += (lost & fp8_math::kLostNonfinite) != 0;
  }
  // One atomic per count per block (thread 0), after the block's sums.
  __device__ void flush(Fp8Counts* counts) {
    const unsigned long long s = block_reduce(sat, SumOp{}), f = block_reduce(flushed, SumOp{}),
                             nf = block_reduce(nonfinite, SumOp{});
    if (threadIdx.x == 0) {
      if (s) atomicAdd(reinterpret_cast<unsigned long long*>(&counts->saturated), s);
      if (f) atomicAdd(reinterpret_cast<unsigned long long*>(&counts->flushed), f);
      if (nf) atomicAdd(reinterpret_cast<unsigned long long*>(&counts->nonfinite), nf);
    }
  }
};

__global__ void fp8_encode_kernel(uint8_t* out, const float* in, int64_t n, float scale, Fp8Format format,
                                  bool saturate, Fp8Counts* counts) {
  LostCounts lost;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float x = in[i], y = __fmul_rn(x, scale);
    const uint8_t code = fp8_math::encode(y, format, saturate);
    out[i] = code;
    lost.add(fp8_math::encode_loss(x, y, code, format));
  }
  if (counts != nullptr) lost.flush(counts);  // uniform over the block
}

__global__ void fp8_decode_kernel(float* out, const uint8_t* in, int64_t n, float scale_inv, Fp8Format format) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    out[i] = __fmul_rn(fp8_math::decode(in[i], format), scale_inv);
}

// result[0]: the amax's bits (a non-negative float orders as its bits);
// result[1]: the nonfinite count.
__global__ void fp8_amax_kernel(unsigned long long* result, const float* x, int64_t n) {
  float amax = 0.0f;
  unsigned long long nonfinite = 0;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float v = x[i];
    if (fp8_math::is_finite(v)) amax = fmaxf(amax, fabsf(v));
    else ++nonfinite;
  }
  amax = block_reduce(amax, MaxOp{});
  nonfinite = block_reduce(nonfinite, SumOp{});
  if (threadIdx.x == 0) {
    atomicMax(result, static_cast<unsigned long long>(__float_as_uint(amax)));
    if (nonfinite) atomicAdd(result + 1, nonfinite);
  }
}

// One block per tile: its amax, its power-of-two scale, then its codes.
__global__ void fp8_quantize_blockwise_kernel(uint8_t* out, float* scale_inv, const float* in, int rows, int cols,
                                              int tile_rows, int tile_cols, int64_t tcols, Fp8Format format,
                                              Fp8Counts* counts) {
  const int64_t t = blockIdx.x;
  const int64_t r0 = (t / tcols) * tile_rows, c0 = (t % tcols) * tile_cols;
  const int64_t h = min(static_cast<int64_t>(tile_rows), rows - r0), w = min(static_cast<int64_t>(tile_cols), cols - c0);
  float amax = 0.0f;
  for (int64_t i = threadIdx.x; i < h * w; i += blockDim.x) {
    const float x = in[(r0 + i / w) * cols + c0 + i % w];
    if (fp8_math::is_finite(x)) amax = fmaxf(amax, fabsf(x));
  }
  amax = block_reduce(amax, MaxOp{});
  const float s = fp8_math::pow2_scale(amax, format);
  if (threadIdx.x == 0) scale_inv[t] = __fdiv_rn(1.0f, s);
  LostCounts lost;
  for (int64_t i = threadIdx.x; i < h * w; i += blockDim.x) {
    const int64_t at = (r0 + i / w) * cols + c0 + i % w;
    const float x = in[at], y = __fmul_rn(x, s);
    const uint8_t code = fp8_math::encode(y, format, /*saturate=*/true);
    out[at] = code;
    lost.add(fp8_math::encode_loss(x, y, code, format));
  }
  if (counts != nullptr) lost.flush(counts);
}

__global__ void fp8_dequantize_blockwise_kernel(float* out, const uint8_t* in, const float* scale_inv, int rows,
                                                int cols, int tile_rows, int tile_cols, int64_t tcols,
                                                Fp8Format format) {
  const int64_t n = static_cast<int64_t>(rows) * cols;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / cols, c = i % cols;
    out[i] = __fmul_rn(fp8_math::decode(in[i], format), scale_inv[(r / tile_rows) * tcols + c / tile_cols]);
  }
}

}  // namespace

void fp8_encode(void* stream, uint8_t* out, const float* in, int64_t n, float scale, Fp8Format format,
                bool saturate, Fp8Counts* counts) {
  LT_CUDA_CHECK_LAUNCH((fp8_encode_kernel<<<grid_for(n), kThreads, 0, as_stream(stream)>>>(out, in, n, scale, format,
                                                                                             saturate, counts)));
}

void fp8_decode(void* stream, float* out, const uint8_t* in, int64_t n, float scale_inv, Fp8Format format) {
  LT_CUDA_CHECK_LAUNCH(
      (fp8_decode_kernel<<<grid_for(n), kThreads, 0, as_stream(stream)>>>(out, in, n, scale_inv, format)));
}

size_t fp8_amax_scratch_bytes(int64_t) { return arena_round(2 * sizeof(unsigned long long)); }

Fp8Amax fp8_amax(void* stream, Arena& arena, const float* x, int64_t n) {
  const cudaStream_t st = as_stream(stream);
  ScratchScope scratch(arena);
  unsigned long long* result = scratch.take<unsigned long long>(2, "fp8_amax");
  LT_CUDA_CHECK(cudaMemsetAsync(result, 0, 2 * sizeof(unsigned long long), st));
  LT_CUDA_CHECK_LAUNCH((fp8_amax_kernel<<<grid_for(n), kThreads, 0, st>>>(result, x, n)));
  unsigned long long host[2] = {0, 0};
  LT_CUDA_CHECK(cudaMemcpyAsync(host, result, sizeof(host), cudaMemcpyDeviceToHost, st));
  LT_CUDA_CHECK(cudaStreamSynchronize(st));
  return {fp8_math::bits_float(static_cast<uint32_t>(host[0])), static_cast<int64_t>(host[1])};
}

void fp8_quantize_blockwise(void* stream, uint8_t* out, float* scale_inv, const float* in, int rows, int cols,
                            int tile_rows, int tile_cols, Fp8Format format, Fp8Counts* counts) {
  const int64_t trows = (rows + tile_rows - 1) / tile_rows, tcols = (cols + tile_cols - 1) / tile_cols;
  LT_CUDA_CHECK_LAUNCH((fp8_quantize_blockwise_kernel<<<static_cast<unsigned>(trows * tcols), kThreads, 0,
                                                        as_stream(stream)>>>(out, scale_inv, in, rows, cols, tile_rows,
                                                                             tile_cols, tcols, format, counts)));
}

void fp8_dequantize_blockwise(void* stream, float* out, const uint8_t* in, const float* scale_inv, int rows,
                              int cols, int tile_rows, int tile_cols, Fp8Format format) {
  const int64_t tcols = (cols + tile_cols - 1) / tile_cols;
  LT_CUDA_CHECK_LAUNCH((fp8_dequantize_blockwise_kernel<<<grid_for(static_cast<int64_t>(rows) * cols), kThreads, 0,
                                                          as_stream(stream)>>>(out, in, scale_inv, rows, cols,
                                                                               tile_rows, tile_cols, tcols, format)));
}

}  // namespace lintrain::cuda
