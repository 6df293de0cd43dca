// The optimizers' update loops, the gradient norm and clipping on CUDA (the
// ops: runtime/ops.h). Elementwise updates are grid-stride kernels, one thread
// per element as the CPU loop's iteration; the sparse SPAM update is one
// block per mask chunk with a block scan for each word's moment offset; the
// gradient norm is a two-pass reduction in double (a fixed tree per chunk,
// then the chunk sums in order), so it gives the same bits run to run.
#include <cuda_runtime.h>

#include <algorithm>

#include "runtime/arena.h"
#include "runtime/backend.h"
#include "runtime/cuda/check.h"
#include "runtime/ops.h"

namespace lintrain::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kWordsPerThread = static_cast<int>(kSpamChunkWords / kThreads);  // sparse SPAM: 4 mask words a thread
static_assert(kSpamChunkWords % kThreads == 0, "a mask chunk splits evenly over the block");

int blocks_for(int64_t n) { return static_cast<int>(std::min<int64_t>((n + kThreads - 1) / kThreads, 65535 * 8)); }

cudaStream_t as_stream(void* stream) { return static_cast<cudaStream_t>(stream); }

#define LT_GRID_STRIDE(i, n)                                                                  \
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)

__global__ void adam_update_kernel(float* out, float* m, float* v, const float* g, int64_t n, AdamStep s,
                                   bool to_param) {
  LT_GRID_STRIDE(i, n) {
    const float gi = g[i];
    const float mi = s.b1 * m[i] + s.c1 * gi;
    const float vi = s.b2 * v[i] + s.c2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    const float u = s.step_size * mi / (sqrtf(vi) * s.inv_sqrt_bc2 + s.eps);
    out[i] = to_param ? out[i] * s.decay - u : u;
  }
}

__global__ void lion_update_kernel(float* p, float* m, const float* g, int64_t n, LionStep s) {
  LT_GRID_STRIDE(i, n) {
    const float c = s.b1 * m[i] + s.c1 * g[i];
    const float sign = static_cast<float>(c > 0.0f) - static_cast<float>(c < 0.0f);
    p[i] = p[i] * s.decay - s.lr * sign;
    m[i] = s.b2 * m[i] + s.c2 * g[i];
  }
}

__device__ void spam_element(float& p, float g, float& m, float& v, const SpamStep& c) {
  if (c.clip) {
    const float limit_sq = c.theta * v;  // v before this step's update
    g = g * g > limit_sq ? copysignf(sqrtf(limit_sq), g) : g;
  }
  m = c.b1 * m + c.c1 * g;
  v = c.b2 * v + c.c2 * g * g;
  p = (p - c.step * m / (sqrtf(v) + c.eps)) * c.decay;
}

__global__ void spam_update_kernel(float* p, float* m, float* v, const float* g, int64_t n, SpamStep s) {
  LT_GRID_STRIDE(i, n) spam_element(p[i], g[i], m[i], v[i], s);
}

// One block per chunk: chunk_start[ch + 1] = set bits of its valid words;
// the invalid words are added into chunk_start[0] (zeroed before, read back
// and reset by the launcher).
__global__ void spam_mask_count_kernel(int64_t* chunk_start, const float* mask, int64_t words, uint32_t last_word_bits) {
  __shared__ unsigned long long counts[kThreads], bad[kThreads];
  const int64_t w0 = blockIdx.x * kSpamChunkWords, w1 = min(words, w0 + kSpamChunkWords);
  unsigned long long count = 0, invalid = 0;
  for (int64_t w = w0 + threadIdx.x; w < w1; w += kThreads) {
    const float x = mask[w];
    const uint32_t allowed = w == words - 1 ? last_word_bits : 0xffffu;
    if (!(x >= 0.0f && x <= 65535.0f) || x != floorf(x) || (static_cast<uint32_t>(x) & ~allowed) != 0) {
      ++invalid;
      continue;
    }
    count += __popc(static_cast<uint32_t>(x));
  }
  counts[threadIdx.x] = count;
  bad[threadIdx.x] = invalid;
  __syncthreads();
  for (int half = kThreads / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) {
      counts[threadIdx.x] += counts[threadIdx.x + half];
      bad[threadIdx.x] += bad[threadIdx.x + half];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    chunk_start[blockIdx.x + 1] = static_cast<int64_t>(counts[0]);
    if (bad[0] != 0) atomicAdd(reinterpret_cast<unsigned long long*>(chunk_start), bad[0]);
  }
}

// The prefix sum over the (few) chunks, in order, by one thread.
__global__ void spam_mask_prefix_kernel(int64_t* chunk_start, int64_t nchunks) {
  chunk_start[0] = 0;
  for (int64_t ch = 0; ch < nchunks; ++ch) chunk_start[ch + 1] += chunk_start[ch];
}

// One block per chunk; thread t owns mask words w0 + 4t .. w0 + 4t + 3 and
// finds its first moment by an exclusive scan of the threads' set bits.
__global__ void spam_sparse_update_kernel(float* p, float* m, float* v, const float* g, const float* mask,
                                          int64_t words, const int64_t* chunk_start, SpamStep s) {
  __shared__ int64_t scan[kThreads];
  const int64_t first = blockIdx.x * kSpamChunkWords + static_cast<int64_t>(threadIdx.x) * kWordsPerThread;
  const int64_t last = min(words, first + kWordsPerThread);
  int64_t mine = 0;
  for (int64_t w = first; w < last; ++w) mine += __popc(static_cast<uint32_t>(mask[w]));
  scan[threadIdx.x] = mine;
  __syncthreads();
  for (int off = 1; off < kThreads; off *= 2) {  // inclusive Hillis-Steele scan
    const int64_t add = threadIdx.x >= off ? scan[threadIdx.x - off] : 0;
    __syncthreads();
    scan[threadIdx.x] += add;
    __syncthreads();
  }
  int64_t k = chunk_start[blockIdx.x] + scan[threadIdx.x] - mine;
  for (int64_t w = first; w < last; ++w) {
    for (uint32_t bits = static_cast<uint32_t>(mask[w]); bits != 0; bits &= bits - 1, ++k) {
      const int64_t i = w * kSpamMaskBits + (__ffs(bits) - 1);
      spam_element(p[i], g[i], m[k], v[k], s);
    }
  }
}

__global__ void sgd_update_kernel(float* p, const float* d, int64_t n, float decay, float lr, bool sign) {
  LT_GRID_STRIDE(i, n) {
    const float di = d[i];
    const float step = sign ? static_cast<float>((di > 0.0f) - (di < 0.0f)) : di;
    p[i] = p[i] * decay - lr * step;
  }
}

__global__ void scale_kernel(float* x, int64_t n, float s) {
  LT_GRID_STRIDE(i, n) x[i] *= s;
}

__global__ void subtract_kernel(float* out, const float* a, const float* b, int64_t n) {
  LT_GRID_STRIDE(i, n) out[i] = a[i] - b[i];
}

// Columns: out (m, r) = in[:, idx];  Rows: out (r, n) = in[idx, :].
__global__ void index_gather_kernel(float* out, const float* in, const float* idx, int64_t n, int64_t r,
                                    int64_t total, bool columns) {
  LT_GRID_STRIDE(e, total) {
    if (columns) out[e] = in[(e / r) * n + static_cast<int64_t>(idx[e % r])];
    else out[e] = in[static_cast<int64_t>(idx[e / n]) * n + e % n];
  }
}

// The inverse: out[:, idx] = in (m, r)  or  out[idx, :] = in (r, n).
__global__ void index_scatter_kernel(float* out, const float* in, const float* idx, int64_t n, int64_t r,
                                     int64_t total, bool columns) {
  LT_GRID_STRIDE(e, total) {
    if (columns) out[(e / r) * n + static_cast<int64_t>(idx[e % r])] = in[e];
    else out[static_cast<int64_t>(idx[e / n]) * n + e % n] = in[e];
  }
}

// partial[c] = sum of g^2 over chunk c, a fixed tree over the block.
__global__ void grad_norm_partial_kernel(double* partial, const float* g, int64_t n) {
  __shared__ double sums[kThreads];
  const int64_t begin = blockIdx.x * kGradNormChunk, end = min(n, begin + kGradNormChunk);
  double s = 0.0;
  for (int64_t i = begin + threadIdx.x; i < end; i += kThreads) s += static_cast<double>(g[i]) * g[i];
  sums[threadIdx.x] = s;
  __syncthreads();
  for (int half = kThreads / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) sums[threadIdx.x] += sums[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) partial[blockIdx.x] = sums[0];
}

// total = the chunk sums in chunk order (the CPU's second pass).
__global__ void grad_norm_total_kernel(double* total, const double* partial, int64_t nchunks) {
  double t = 0.0;
  for (int64_t c = 0; c < nchunks; ++c) t += partial[c];
  *total = t;
}

int64_t grad_norm_chunks(int64_t n) { return (n + kGradNormChunk - 1) / kGradNormChunk; }

}  // namespace

void adam_update(void* stream, float* out, float* m, float* v, const float* g, int64_t n, const AdamStep& s,
                 AdamTarget target) {
  if (n == 0) return;
  LT_CUDA_CHECK_LAUNCH((adam_update_kernel<<<blocks_for(n), kThreads, 0, as_stream(stream)>>>(
      out, m, v, g, n, s, target == AdamTarget::Param)));
}

void lion_update(void* stream, float* p, float* m, const float* g, int64_t n, const LionStep& s) {
  if (n == 0) return;
  LT_CUDA_CHECK_LAUNCH((lion_update_kernel<<<blocks_for(n), kThreads, 0, as_stream(stream)>>>(p, m, g, n, s)));
}

void spam_update(void* stream, float* p, float* m, float* v, const float* g, int64_t n, const SpamStep& s) {
  if (n == 0) return;
  LT_CUDA_CHECK_LAUNCH((spam_update_kernel<<<blocks_for(n), kThreads, 0, as_stream(stream)>>>(p, m, v, g, n, s)));
}

SpamMaskCount spam_mask_offsets(void* stream, int64_t* chunk_start, const float* mask, int64_t words,
                                int64_t numel) {
  const cudaStream_t st = as_stream(stream);
  const int64_t nchunks = spam_mask_chunks(words);
  SpamMaskCount out;
  LT_CUDA_CHECK(cudaMemsetAsync(chunk_start, 0, sizeof(int64_t), st));
  if (nchunks > 0) {
    const uint32_t last_word_bits = static_cast<uint32_t>((1ull << (numel - (words - 1) * kSpamMaskBits)) - 1);
    LT_CUDA_CHECK_LAUNCH((spam_mask_count_kernel<<<static_cast<unsigned>(nchunks), kThreads, 0, st>>>(
        chunk_start, mask, words, last_word_bits)));
  }
  // The two counts come back to the host: the caller refuses a damaged mask.
  LT_CUDA_CHECK(cudaMemcpyAsync(&out.invalid_words, chunk_start, sizeof(int64_t), cudaMemcpyDeviceToHost, st));
  LT_CUDA_CHECK_LAUNCH((spam_mask_prefix_kernel<<<1, 1, 0, st>>>(chunk_start, nchunks)));
  LT_CUDA_CHECK(cudaMemcpyAsync(&out.entries, chunk_start + nchunks, sizeof(int64_t), cudaMemcpyDeviceToHost, st));
  LT_CUDA_CHECK(cudaStreamSynchronize(st));
  return out;
}

void spam_sparse_update(void* stream, float* p, float* m, float* v, const float* g, const float* mask,
                        int64_t words, const int64_t* chunk_start, const SpamStep& s) {
  const int64_t nchunks = spam_mask_chunks(words);
  if (nchunks == 0) return;
  LT_CUDA_CHECK_LAUNCH((spam_sparse_update_kernel<<<static_cast<unsigned>(nchunks), kThreads, 0, as_stream(stream)>>>(
      p, m, v, g, mask, words, chunk_start, s)));
}

void sgd_update(void* stream, float* p, const float* d, int64_t n, float decay, float lr, SgdDirection dir) {
  if (n == 0) return;
  LT_CUDA_CHECK_LAUNCH((sgd_update_kernel<<<blocks_for(n), kThreads, 0, as_stream(stream)>>>(
      p, d, n, decay, lr, dir == SgdDirection::Sign)));
}

void scale(void* stream, float* x, int64_t n, float s) {
  if (n == 0) return;
  LT_CUDA_CHECK_LAUNCH((scale_kernel<<<blocks_for(n), kThreads, 0, as_stream(stream)>>>(x, n, s)));
}

void subtract(void* stream, float* out, const float* a, const float* b, int64_t n) {
  if (n == 0) return;
  LT_CUDA_CHECK_LAUNCH((subtract_kernel<<<blocks_for(n), kThreads, 0, as_stream(stream)>>>(out, a, b, n)));
}

void index_gather(void* stream, float* out, const float* in, const float* idx, int64_t m, int64_t n, int64_t r,
                  IndexAxis axis) {
  const bool columns = axis == IndexAxis::Columns;
  const int64_t total = columns ? m * r : r * n;
  if (total == 0) return;
  LT_CUDA_CHECK_LAUNCH((index_gather_kernel<<<blocks_for(total), kThreads, 0, as_stream(stream)>>>(
      out, in, idx, n, r, total, columns)));
}

void index_scatter(void* stream, float* out, const float* in, const float* idx, int64_t m, int64_t n, int64_t r,
                   IndexAxis axis) {
  if (m * n == 0) return;
  const cudaStream_t st = as_stream(stream);
  LT_CUDA_CHECK(cudaMemsetAsync(out, 0, static_cast<size_t>(m * n) * sizeof(float), st));
  const bool columns = axis == IndexAxis::Columns;
  const int64_t total = columns ? m * r : r * n;
  if (total == 0) return;
  LT_CUDA_CHECK_LAUNCH((index_scatter_kernel<<<blocks_for(total), kThreads, 0, st>>>(out, in, idx, n, r, total,
                                                                                      columns)));
}

size_t grad_norm_squared_scratch_bytes(int64_t n) {
  return arena_round(static_cast<size_t>(grad_norm_chunks(n) + 1) * sizeof(double));
}

double grad_norm_squared(void* stream, Arena& arena, const float* g, int64_t n) {
  const int64_t nchunks = grad_norm_chunks(n);
  if (nchunks == 0) return 0.0;
  const cudaStream_t st = as_stream(stream);
  ScratchScope scratch(arena);
  double* partial = scratch.take<double>(static_cast<size_t>(nchunks) + 1, "grad_norm_squared");
  double* total = partial + nchunks;
  LT_CUDA_CHECK_LAUNCH((grad_norm_partial_kernel<<<static_cast<unsigned>(nchunks), kThreads, 0, st>>>(partial, g, n)));
  LT_CUDA_CHECK_LAUNCH((grad_norm_total_kernel<<<1, 1, 0, st>>>(total, partial, nchunks)));
  double host = 0.0;
  LT_CUDA_CHECK(cudaMemcpyAsync(&host, total, sizeof(double), cudaMemcpyDeviceToHost, st));
  LT_CUDA_CHECK(cudaStreamSynchronize(st));
  return host;
}

}  // namespace lintrain::cuda
