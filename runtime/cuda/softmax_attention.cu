// Causal softmax attention on CUDA (the op and its layout: runtime/ops.h).
// Correct and simple rather than fast (no tensor cores yet):
//   forward   one block per (query tile, head, sequence), one thread per query,
//             keys streamed through shared memory in tiles with an online
//             softmax (running max and sum), so no score row is stored;
//   backward  D = rowsum(dO .* O) per query into scratch; dq with one thread
//             per query recomputing P = exp(s - lse) tile by tile; dk, dv with
//             one thread per key of a (key tile, kv head, sequence) block,
//             summing the group's query heads and then the queries in order:
//             deterministic, no atomics.
// Per-thread rows (q, accumulators) live in shared memory laid out [d][threads]
// so a warp touches consecutive words; key/value tiles are read as broadcasts.
#include <cuda_runtime.h>

#include <cmath>

#include "runtime/arena.h"
#include "runtime/backend.h"
#include "runtime/cuda/check.h"

namespace lintrain::cuda {

namespace {

constexpr int kQueries = 64;  // threads (queries) per forward / dq block
constexpr int kKeys = 32;     // threads (keys) per dk/dv block
constexpr int kTile = 16;     // keys (forward, dq) or queries (dk/dv) per shared-memory tile

__device__ size_t row_of(int b, int T, int t) { return static_cast<size_t>(b) * T + t; }

// Shared memory of the three kernels, in floats.
size_t forward_smem(int d) { return sizeof(float) * (2 * static_cast<size_t>(kQueries) * d + 2 * kTile * d); }
size_t dq_smem(int d) { return sizeof(float) * (3 * static_cast<size_t>(kQueries) * d + 2 * kTile * d); }
size_t dkdv_smem(int d) { return sizeof(float) * (4 * static_cast<size_t>(kKeys) * d + 2 * kTile * d + 2 * kTile); }

// Opts a kernel into more than the default 48 KiB of dynamic shared memory.
template <typename Kernel>
void allow_smem(Kernel kernel, size_t bytes) {
  if (bytes > 48 * 1024)
    LT_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
}

// Loads rows [j0, j0 + kTile) (clipped at n) of a head's (n, d) rows with
// stride ld into dst [kTile][d]; rows past n become zeros.
__device__ void load_tile(float* dst, const float* src, int ld, int j0, int n, int d) {
  for (int idx = threadIdx.x; idx < kTile * d; idx += blockDim.x) {
    const int jj = idx / d, c = idx % d, j = j0 + jj;
    dst[idx] = j < n ? src[static_cast<size_t>(j) * ld + c] : 0.0f;
  }
}

__global__ void softmax_forward_kernel(AttentionDims a, float* o, int ldo, float* lse, const float* q, int ldq,
                                       const float* k, int ldk, const float* v, int ldv, float scale) {
  extern __shared__ float smem[];
  const int d = a.d, tid = threadIdx.x;
  float* qs = smem;                // [d][kQueries], pre-scaled
  float* acc = qs + d * kQueries;  // [d][kQueries]
  float* ks = acc + d * kQueries;  // [kTile][d]
  float* vs = ks + kTile * d;      // [kTile][d]
  const int b = blockIdx.z, h = blockIdx.y, t0 = blockIdx.x * kQueries, t = t0 + tid;
  const int kvh = h / (a.H / a.KVH);
  const bool active = t < a.Tq;
  for (int c = 0; c < d; ++c) {
    qs[c * kQueries + tid] = active ? q[row_of(b, a.Tq, t) * ldq + h * d + c] * scale : 0.0f;
    acc[c * kQueries + tid] = 0.0f;
  }
  const float* k_seq = k + row_of(b, a.Tk, 0) * ldk + kvh * d;
  const float* v_seq = v + row_of(b, a.Tk, 0) * ldv + kvh * d;
  const int nk = a.q_offset + min(t0 + kQueries, a.Tq);  // keys the block's last query sees
  const int visible = a.q_offset + t + 1;                 // keys this query sees
  float m = -INFINITY, l = 0.0f;
  for (int j0 = 0; j0 < nk; j0 += kTile) {
    __syncthreads();
    load_tile(ks, k_seq, ldk, j0, nk, d);
    load_tile(vs, v_seq, ldv, j0, nk, d);
    __syncthreads();
    if (!active || j0 >= visible) continue;
    float s[kTile];
    float tile_max = -INFINITY;
#pragma unroll
    for (int jj = 0; jj < kTile; ++jj) {
      s[jj] = -INFINITY;
      if (j0 + jj < visible) {
        float dot = 0.0f;
        for (int c = 0; c < d; ++c) dot += qs[c * kQueries + tid] * ks[jj * d + c];
        s[jj] = dot;
        tile_max = fmaxf(tile_max, dot);
      }
    }
    const float m_new = fmaxf(m, tile_max);
    const float alpha = expf(m - m_new);  // 0 on the first tile (m = -inf)
    float p[kTile];
    float p_sum = 0.0f;
#pragma unroll
    for (int jj = 0; jj < kTile; ++jj) {
      p[jj] = j0 + jj < visible ? expf(s[jj] - m_new) : 0.0f;
      p_sum += p[jj];
    }
    l = l * alpha + p_sum;
    for (int c = 0; c < d; ++c) {
      float x = acc[c * kQueries + tid] * alpha;
#pragma unroll
      for (int jj = 0; jj < kTile; ++jj) x += p[jj] * vs[jj * d + c];
      acc[c * kQueries + tid] = x;
    }
    m = m_new;
  }
  if (!active) return;
  const float inv = 1.0f / l;
  float* o_row = o + row_of(b, a.Tq, t) * ldo + h * d;
  for (int c = 0; c < d; ++c) o_row[c] = acc[c * kQueries + tid] * inv;
  lse[(static_cast<size_t>(b) * a.H + h) * a.Tq + t] = m + logf(l);
}

// D[b, h, t] = sum_c dout * o over the query's row.
__global__ void softmax_rowdot_kernel(AttentionDims a, float* D, const float* dout, int lddo, const float* o,
                                      int ldo) {
  const size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  const size_t total = static_cast<size_t>(a.B) * a.H * a.Tq;
  if (i >= total) return;
  const int t = static_cast<int>(i % a.Tq), h = static_cast<int>((i / a.Tq) % a.H);
  const int b = static_cast<int>(i / (static_cast<size_t>(a.Tq) * a.H));
  const float* dy = dout + row_of(b, a.Tq, t) * lddo + h * a.d;
  const float* y = o + row_of(b, a.Tq, t) * ldo + h * a.d;
  float acc = 0.0f;
  for (int c = 0; c < a.d; ++c) acc += dy[c] * y[c];
  D[i] = acc;
}

// dq_t = scale * sum_j P_tj (dP_tj - D_t) k_j with P = exp(scale q.k - lse), dP = dO_t . v_j.
__global__ void softmax_dq_kernel(AttentionDims a, float* dq, int lddq, const float* dout, int lddo, const float* q,
                                  int ldq, const float* k, int ldk, const float* v, int ldv, const float* lse,
                                  const float* D, float scale) {
  extern __shared__ float smem[];
  const int d = a.d, tid = threadIdx.x;
  float* qs = smem;                // [d][kQueries], pre-scaled
  float* dos = qs + d * kQueries;  // [d][kQueries]
  float* acc = dos + d * kQueries; // [d][kQueries]
  float* ks = acc + d * kQueries;  // [kTile][d]
  float* vs = ks + kTile * d;      // [kTile][d]
  const int b = blockIdx.z, h = blockIdx.y, t0 = blockIdx.x * kQueries, t = t0 + tid;
  const int kvh = h / (a.H / a.KVH);
  const bool active = t < a.Tq;
  for (int c = 0; c < d; ++c) {
    qs[c * kQueries + tid] = active ? q[row_of(b, a.Tq, t) * ldq + h * d + c] * scale : 0.0f;
    dos[c * kQueries + tid] = active ? dout[row_of(b, a.Tq, t) * lddo + h * d + c] : 0.0f;
    acc[c * kQueries + tid] = 0.0f;
  }
  const size_t stat = (static_cast<size_t>(b) * a.H + h) * a.Tq + t;
  const float my_lse = active ? lse[stat] : 0.0f, my_D = active ? D[stat] : 0.0f;
  const float* k_seq = k + row_of(b, a.Tk, 0) * ldk + kvh * d;
  const float* v_seq = v + row_of(b, a.Tk, 0) * ldv + kvh * d;
  const int nk = a.q_offset + min(t0 + kQueries, a.Tq);
  const int visible = a.q_offset + t + 1;
  for (int j0 = 0; j0 < nk; j0 += kTile) {
    __syncthreads();
    load_tile(ks, k_seq, ldk, j0, nk, d);
    load_tile(vs, v_seq, ldv, j0, nk, d);
    __syncthreads();
    if (!active || j0 >= visible) continue;
    float ds[kTile];
#pragma unroll
    for (int jj = 0; jj < kTile; ++jj) {
      ds[jj] = 0.0f;
      if (j0 + jj < visible) {
        float s = 0.0f, dp = 0.0f;
        for (int c = 0; c < d; ++c) {
          s += qs[c * kQueries + tid] * ks[jj * d + c];
          dp += dos[c * kQueries + tid] * vs[jj * d + c];
        }
        ds[jj] = expf(s - my_lse) * (dp - my_D);
      }
    }
    for (int c = 0; c < d; ++c) {
      float x = acc[c * kQueries + tid];
#pragma unroll
      for (int jj = 0; jj < kTile; ++jj) x += ds[jj] * ks[jj * d + c];
      acc[c * kQueries + tid] = x;
    }
  }
  if (!active) return;
  float* dq_row = dq + row_of(b, a.Tq, t) * lddq + h * d;
  for (int c = 0; c < d; ++c) dq_row[c] = acc[c * kQueries + tid] * scale;
}

// One thread per key j of kv head kvh: dv_j = sum P_tj dO_t, dk_j = scale *
// sum P_tj (dP_tj - D_t) q_t over the group's query heads (in order) and the
// queries t that see j (t >= j - q_offset), in increasing t.
__global__ void softmax_dkdv_kernel(AttentionDims a, float* dk, int lddk, float* dv, int lddv, const float* dout,
                                    int lddo, const float* q, int ldq, const float* k, int ldk, const float* v,
                                    int ldv, const float* lse, const float* D, float scale) {
  extern __shared__ float smem[];
  const int d = a.d, tid = threadIdx.x;
  float* kr = smem;                  // [d][kKeys], pre-scaled
  float* vr = kr + d * kKeys;        // [d][kKeys]
  float* dka = vr + d * kKeys;       // [d][kKeys]
  float* dva = dka + d * kKeys;      // [d][kKeys]
  float* qs = dva + d * kKeys;       // [kTile][d]
  float* dos = qs + kTile * d;       // [kTile][d]
  float* lse_s = dos + kTile * d;    // [kTile]
  float* D_s = lse_s + kTile;        // [kTile]
  const int b = blockIdx.z, kvh = blockIdx.y, j0 = blockIdx.x * kKeys, j = j0 + tid;
  const int group = a.H / a.KVH;
  const bool active = j < a.Tk;
  for (int c = 0; c < d; ++c) {
    kr[c * kKeys + tid] = active ? k[row_of(b, a.Tk, j) * ldk + kvh * d + c] * scale : 0.0f;
    vr[c * kKeys + tid] = active ? v[row_of(b, a.Tk, j) * ldv + kvh * d + c] : 0.0f;
    dka[c * kKeys + tid] = 0.0f;
    dva[c * kKeys + tid] = 0.0f;
  }
  // Queries that see some key of the tile: t >= j0 - q_offset.
  const int t_first = max(0, j0 - a.q_offset), my_first = j - a.q_offset;
  for (int h = kvh * group; h < (kvh + 1) * group; ++h) {
    const float* q_seq = q + row_of(b, a.Tq, 0) * ldq + h * d;
    const float* do_seq = dout + row_of(b, a.Tq, 0) * lddo + h * d;
    const size_t stat0 = (static_cast<size_t>(b) * a.H + h) * a.Tq;
    for (int tt0 = t_first; tt0 < a.Tq; tt0 += kTile) {
      __syncthreads();
      load_tile(qs, q_seq, ldq, tt0, a.Tq, d);
      load_tile(dos, do_seq, lddo, tt0, a.Tq, d);
      for (int i = tid; i < kTile; i += blockDim.x) {
        lse_s[i] = tt0 + i < a.Tq ? lse[stat0 + tt0 + i] : 0.0f;
        D_s[i] = tt0 + i < a.Tq ? D[stat0 + tt0 + i] : 0.0f;
      }
      __syncthreads();
      if (!active) continue;
      float p[kTile], ds[kTile];
#pragma unroll
      for (int ii = 0; ii < kTile; ++ii) {
        p[ii] = 0.0f;
        ds[ii] = 0.0f;
        const int t = tt0 + ii;
        if (t < a.Tq && t >= my_first) {
          float s = 0.0f, dp = 0.0f;
          for (int c = 0; c < d; ++c) {
            s += kr[c * kKeys + tid] * qs[ii * d + c];
            dp += vr[c * kKeys + tid] * dos[ii * d + c];
          }
          p[ii] = expf(s - lse_s[ii]);
          ds[ii] = p[ii] * (dp - D_s[ii]);
        }
      }
      for (int c = 0; c < d; ++c) {
        float xk = dka[c * kKeys + tid], xv = dva[c * kKeys + tid];
#pragma unroll
        for (int ii = 0; ii < kTile; ++ii) {
          xk += ds[ii] * qs[ii * d + c];
          xv += p[ii] * dos[ii * d + c];
        }
        dka[c * kKeys + tid] = xk;
        dva[c * kKeys + tid] = xv;
      }
    }
  }
  if (!active) return;
  float* dk_row = dk + row_of(b, a.Tk, j) * lddk + kvh * d;
  float* dv_row = dv + row_of(b, a.Tk, j) * lddv + kvh * d;
  for (int c = 0; c < d; ++c) {
    dk_row[c] = dka[c * kKeys + tid] * scale;
    dv_row[c] = dva[c * kKeys + tid];
  }
}

float score_scale(int d) { return static_cast<float>(1.0 / std::sqrt(static_cast<double>(d))); }

}  // namespace

size_t softmax_attention_forward_scratch_bytes(const AttentionDims&) { return 0; }

size_t softmax_attention_backward_scratch_bytes(const AttentionDims& a) {
  return arena_round(static_cast<size_t>(a.B) * a.H * a.Tq * sizeof(float));  // D
}

void softmax_attention_forward(void* stream, Arena&, const AttentionDims& a, float* o, int ldo, float* lse,
                               const float* q, int ldq, const float* k, int ldk, const float* v, int ldv) {
  if (static_cast<long>(a.B) * a.Tq == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  const size_t smem = forward_smem(a.d);
  allow_smem(softmax_forward_kernel, smem);
  const dim3 grid((a.Tq + kQueries - 1) / kQueries, a.H, a.B);
  LT_CUDA_CHECK_LAUNCH((softmax_forward_kernel<<<grid, kQueries, smem, s>>>(a, o, ldo, lse, q, ldq, k, ldk, v, ldv,
                                                                            score_scale(a.d))));
}

void softmax_attention_backward(void* stream, Arena& arena, const AttentionDims& a, float* dq, int lddq, float* dk,
                                int lddk, float* dv, int lddv, const float* dout, int lddo, const float* q, int ldq,
                                const float* k, int ldk, const float* v, int ldv, const float* o, int ldo,
                                const float* lse) {
  if (static_cast<long>(a.B) * a.Tk == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  const float scale = score_scale(a.d);
  ScratchScope scratch(arena);
  const size_t rows = static_cast<size_t>(a.B) * a.H * a.Tq;
  float* D = nullptr;  // no query: dk, dv are zeros and D is never read
  if (rows > 0) {
    D = scratch.take<float>(rows, "softmax_attention_backward");
    LT_CUDA_CHECK_LAUNCH((softmax_rowdot_kernel<<<static_cast<unsigned>((rows + 255) / 256), 256, 0, s>>>(
        a, D, dout, lddo, o, ldo)));
    const size_t smem = dq_smem(a.d);
    allow_smem(softmax_dq_kernel, smem);
    const dim3 grid((a.Tq + kQueries - 1) / kQueries, a.H, a.B);
    LT_CUDA_CHECK_LAUNCH((softmax_dq_kernel<<<grid, kQueries, smem, s>>>(a, dq, lddq, dout, lddo, q, ldq, k, ldk, v,
                                                                         ldv, lse, D, scale)));
  }
  const size_t smem = dkdv_smem(a.d);
  allow_smem(softmax_dkdv_kernel, smem);
  const dim3 grid((a.Tk + kKeys - 1) / kKeys, a.KVH, a.B);
  LT_CUDA_CHECK_LAUNCH((softmax_dkdv_kernel<<<grid, kKeys, smem, s>>>(a, dk, lddk, dv, lddv, dout, lddo, q, ldq, k,
                                                                      ldk, v, ldv, lse, D, scale)));
}

}  // namespace lintrain::cuda
