// Causal linear attention with per-head decay on CUDA (the op and its math:
// runtime/ops.h). Long sequences are cut into chunks that run in parallel
// (the driver at the end of this file); inside a chunk the recurrence
//     S_t = lambda S_{t-1} + k_t^T v_t,   o_t = q_t S_t
// runs token by token in FP32 (no tensor cores yet), with the d x d state of one head in shared memory and one
// thread per row or column of it (d threads per block). Tokens are staged
// through shared memory kTokens at a time. The state is stored with a row
// stride of d + 1 so that both a thread walking its row and a thread walking
// its column touch distinct banks.
//   forward   one block per (sequence, query head); thread c owns column c.
//   backward  one block per (sequence, kv head), the group's query heads in
//             order (dk, dv of the kv head are summed by one block: no
//             atomics, deterministic). Sweep 1 rebuilds S_t forward for
//             dq_t = dO_t S_t^T (thread i owns row i); sweep 2 carries the
//             state gradient G backward: G += q_t^T dO_t, dk_t += G v_t
//             (rows), dv_t += k_t G (columns), G *= lambda.
#include <cuda_runtime.h>

#include <algorithm>

#include "runtime/arena.h"
#include "runtime/backend.h"
#include "runtime/cuda/check.h"

namespace lintrain::cuda {

namespace {

constexpr int kTokens = 8;  // tokens staged in shared memory at a time

__device__ size_t row_of(int b, int T, int t) { return static_cast<size_t>(b) * T + t; }

size_t state_floats(int d) { return static_cast<size_t>(d) * (d + 1); }
size_t forward_smem(int d) { return sizeof(float) * (state_floats(d) + 3 * static_cast<size_t>(kTokens) * d); }
size_t backward_smem(int d) { return sizeof(float) * (state_floats(d) + 4 * static_cast<size_t>(kTokens) * d); }

// Checks that d threads and `bytes` of shared memory fit one block, naming
// the op and the limit, and opts the kernel into the shared memory it needs.
template <typename Kernel>
void prepare_launch(Kernel kernel, const char* op, int d, size_t bytes) {
  int dev = 0, optin = 0;
  LT_CUDA_CHECK(cudaGetDevice(&dev));
  LT_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  LT_CHECK(d <= 1024 && bytes <= static_cast<size_t>(optin), "[", op, "] the CUDA body keeps a d x d state in one ",
           "block's shared memory: head dim d = ", d, " needs ", bytes, " bytes, this GPU allows ", optin);
  if (bytes > 48 * 1024)
    LT_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
}

// dst[tt][c] = row t0 + tt of a head's rows (stride ld), tt < n; rows past T are not loaded.
__device__ void load_tokens(float* dst, const float* src, int ld, int t0, int n, int d) {
  for (int idx = threadIdx.x; idx < n * d; idx += blockDim.x) {
    const int tt = idx / d, c = idx % d;
    dst[idx] = src[static_cast<size_t>(t0 + tt) * ld + c];
  }
}

__global__ void linear_forward_kernel(LinearAttentionDims m, float* o, const float* q, const float* k,
                                      const float* v, const float* decay, const float* state_in,
                                      float* state_out) {
  extern __shared__ float smem[];
  const int d = m.d, ls = d + 1, c = threadIdx.x;
  float* S = smem;                 // [d][d + 1], S[i * ls + c]
  float* qs = S + d * ls;          // [kTokens][d]
  float* ks = qs + kTokens * d;
  float* vs = ks + kTokens * d;
  const int b = blockIdx.x / m.H, h = blockIdx.x % m.H, g = h / (m.H / m.KVH);
  const float lambda = decay[h];
  const size_t dd = static_cast<size_t>(d) * d, bh = static_cast<size_t>(b) * m.H + h;
  for (int i = 0; i < d; ++i) S[i * ls + c] = state_in ? state_in[bh * dd + static_cast<size_t>(i) * d + c] : 0.0f;
  const float* qh = q + row_of(b, m.T, 0) * m.ldq + h * d;
  const float* kh = k + row_of(b, m.T, 0) * m.ldk + g * d;
  const float* vh = v + row_of(b, m.T, 0) * m.ldv + g * d;
  float* oh = o + row_of(b, m.T, 0) * m.ldo + h * d;
  for (int t0 = 0; t0 < m.T; t0 += kTokens) {
    const int n = min(kTokens, m.T - t0);
    __syncthreads();
    load_tokens(qs, qh, m.ldq, t0, n, d);
    load_tokens(ks, kh, m.ldk, t0, n, d);
    load_tokens(vs, vh, m.ldv, t0, n, d);
    __syncthreads();
    for (int tt = 0; tt < n; ++tt) {
      const float vc = vs[tt * d + c];
      float acc = 0.0f;
      for (int i = 0; i < d; ++i) {
        const float s = lambda * S[i * ls + c] + ks[tt * d + i] * vc;
        S[i * ls + c] = s;
        acc += qs[tt * d + i] * s;
      }
      oh[static_cast<size_t>(t0 + tt) * m.ldo + c] = acc;
    }
  }
  if (state_out)
    for (int i = 0; i < d; ++i) state_out[bh * dd + static_cast<size_t>(i) * d + c] = S[i * ls + c];
}

__global__ void linear_backward_kernel(LinearAttentionDims m, float* dq, float* dk, float* dv, float* dstate_in,
                                       const float* dout, const float* dstate_out, const float* q, const float* k,
                                       const float* v, const float* decay, const float* state_in) {
  extern __shared__ float smem[];
  const int d = m.d, ls = d + 1, r = threadIdx.x;  // r: this thread's row (or column) index
  float* S = smem;                 // [d][d + 1]: the state, then its gradient
  float* qs = S + d * ls;          // [kTokens][d]
  float* ks = qs + kTokens * d;
  float* vs = ks + kTokens * d;
  float* dos = vs + kTokens * d;
  const int b = blockIdx.x / m.KVH, g = blockIdx.x % m.KVH, group = m.H / m.KVH;
  const size_t dd = static_cast<size_t>(d) * d;
  const float* kh = k + row_of(b, m.T, 0) * m.ldk + g * d;
  const float* vh = v + row_of(b, m.T, 0) * m.ldv + g * d;
  float* dkh = dk + row_of(b, m.T, 0) * m.ldk + g * d;
  float* dvh = dv + row_of(b, m.T, 0) * m.ldv + g * d;
  for (int t = 0; t < m.T; ++t) {
    dkh[static_cast<size_t>(t) * m.ldk + r] = 0.0f;
    dvh[static_cast<size_t>(t) * m.ldv + r] = 0.0f;
  }
  for (int h = g * group; h < (g + 1) * group; ++h) {
    const float lambda = decay[h];
    const size_t bh = static_cast<size_t>(b) * m.H + h;
    const float* qh = q + row_of(b, m.T, 0) * m.ldq + h * d;
    const float* doh = dout + row_of(b, m.T, 0) * m.ldo + h * d;
    float* dqh = dq + row_of(b, m.T, 0) * m.ldq + h * d;

    // Sweep 1: S_t forward, dq_t[r] = sum_c dO_t[c] S_t[r][c] (row r).
    __syncthreads();
    for (int c = 0; c < d; ++c) S[r * ls + c] = state_in ? state_in[bh * dd + static_cast<size_t>(r) * d + c] : 0.0f;
    for (int t0 = 0; t0 < m.T; t0 += kTokens) {
      const int n = min(kTokens, m.T - t0);
      __syncthreads();
      load_tokens(ks, kh, m.ldk, t0, n, d);
      load_tokens(vs, vh, m.ldv, t0, n, d);
      load_tokens(dos, doh, m.ldo, t0, n, d);
      __syncthreads();
      for (int tt = 0; tt < n; ++tt) {
        const float kr = ks[tt * d + r];
        float acc = 0.0f;
        for (int c = 0; c < d; ++c) {
          const float s = lambda * S[r * ls + c] + kr * vs[tt * d + c];
          S[r * ls + c] = s;
          acc += dos[tt * d + c] * s;
        }
        dqh[static_cast<size_t>(t0 + tt) * m.ldq + r] = acc;
      }
    }

    // Sweep 2: G = dL/dS_t backward from dstate_out; the decay of a step is
    // applied when the next (earlier) token is added, and to dstate_in.
    __syncthreads();
    for (int c = 0; c < d; ++c)
      S[r * ls + c] = dstate_out ? dstate_out[bh * dd + static_cast<size_t>(r) * d + c] : 0.0f;
    bool first = true;
    const int last_tile = m.T > 0 ? (m.T - 1) / kTokens * kTokens : 0;
    for (int t0 = last_tile; t0 >= 0 && m.T > 0; t0 -= kTokens) {
      const int n = min(kTokens, m.T - t0);
      __syncthreads();
      load_tokens(qs, qh, m.ldq, t0, n, d);
      load_tokens(ks, kh, m.ldk, t0, n, d);
      load_tokens(vs, vh, m.ldv, t0, n, d);
      load_tokens(dos, doh, m.ldo, t0, n, d);
      __syncthreads();
      for (int tt = n - 1; tt >= 0; --tt) {
        // Row r: G = lambda G + q^T dO (no decay before the last token), dk_t[r] += G v_t.
        const float qr = qs[tt * d + r], decay_now = first ? 1.0f : lambda;
        float acc = 0.0f;
        for (int c = 0; c < d; ++c) {
          const float x = decay_now * S[r * ls + c] + qr * dos[tt * d + c];
          S[r * ls + c] = x;
          acc += x * vs[tt * d + c];
        }
        first = false;
        dkh[static_cast<size_t>(t0 + tt) * m.ldk + r] += acc;
        __syncthreads();
        // Column r: dv_t[r] += sum_i k_t[i] G[i][r].
        float accv = 0.0f;
        for (int i = 0; i < d; ++i) accv += ks[tt * d + i] * S[i * ls + r];
        dvh[static_cast<size_t>(t0 + tt) * m.ldv + r] += accv;
        __syncthreads();
      }
    }
    if (dstate_in) {
      const float decay_now = m.T > 0 ? lambda : 1.0f;  // G = dL/dS_1 -> dL/dS_0
      for (int c = 0; c < d; ++c) dstate_in[bh * dd + static_cast<size_t>(r) * d + c] = decay_now * S[r * ls + c];
    }
  }
}

}  // namespace

// ---- chunk-parallel driver -------------------------------------------------------------
// The recurrence above runs the T tokens of a (sequence, head) one after
// another on one block: B * H blocks, depth T. For long sequences the
// sequence is cut into n chunks of L tokens and the LASP-2 decomposition
// (runtime/ops.h, the LASP-2 terms) is applied inside the GPU, the chunks
// playing the SP ranks:
//   forward   M_j = the state chunk j alone builds (lasp2_chunk_state, all
//             chunks at once); P_j = the state entering chunk j by a scan over
//             the chunks, P_0 = state_in, P_{j+1} = lambda^L P_j + M_j (double
//             accumulation); then the recurrence on every chunk at once,
//             started from P_j: B * n * H blocks of depth L.
//   backward  P_j again; dP_j = dL/dP_j from chunk j's own outputs
//             (lasp2_prefix_state_grad); the gradient of each chunk's end
//             state by the reverse scan G_j = dP_{j+1} + lambda^L G_{j+1},
//             from dstate_out; then the backward recurrence of every chunk at
//             once (state_in P_j, dstate_out G_j). dL/dstate_in is the scan's
//             last value.
// Tokens past the n whole chunks (T = n L + r) are one more recurrence per
// sequence, started from P_n. The result is the recurrence's up to the order
// of the fp32 sums. Scratch: three (B, n, H, d, d) state arrays.
namespace {

constexpr int kMinChunk = 64;        // below this a chunk's depth is not worth the scans
constexpr int kTargetBlocks = 2048;  // (sequence, chunk, head) blocks that fill an H100/H200

struct ChunkPlan {
  int L = 0, n = 0, tail = 0;  // chunk length, whole chunks per sequence, tokens after them
  bool chunked() const { return n > 1; }
};

ChunkPlan plan_chunks(const LinearAttentionDims& m) {
  ChunkPlan p;
  const int most = m.T / kMinChunk;
  const int want = std::max(1, kTargetBlocks / std::max(1, m.B * m.H));
  p.n = std::min(most, want);
  if (p.n <= 1) return ChunkPlan{m.T, 1, 0};
  p.L = m.T / p.n;
  p.tail = m.T - p.n * p.L;
  return p;
}

// The dims of n chunks of L tokens of one sequence (or of B sequences when
// the chunks tile them exactly) as a batch of chunk-sequences.
LinearAttentionDims chunk_dims(const LinearAttentionDims& m, int batch, int L) {
  LinearAttentionDims c = m;
  c.B = batch;
  c.T = L;
  return c;
}

constexpr int kScanThreads = 256;

// In place, per (b, h, element): P[b, j] = the state entering chunk j of
// sequence b (from state_in, then lambda^L P + M), written over M[b, j];
// last[b] = the state after the n chunks.
__global__ void prefix_scan_kernel(float* MP, float* last, const float* state_in, const float* decay, int B, int n,
                                   int H, int dd, int L) {
  const size_t idx = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  const size_t per_b = static_cast<size_t>(H) * dd;
  if (idx >= static_cast<size_t>(B) * per_b) return;
  const size_t b = idx / per_b, within = idx % per_b;
  const int h = static_cast<int>(within / dd);
  const double w = exp(static_cast<double>(L) * log(static_cast<double>(decay[h])));
  double acc = state_in ? state_in[idx] : 0.0;
  for (int j = 0; j < n; ++j) {
    float* slot = MP + (b * n + j) * per_b + within;
    const double m = *slot;
    *slot = static_cast<float>(acc);
    acc = w * acc + m;
  }
  last[idx] = static_cast<float>(acc);
}

// In place, per (b, h, element), from the last chunk down: G[b, j] = dL/d(the
// state leaving chunk j), written over dP[b, j]; g_end[b] = dL/d(the state
// after the n chunks) (zeros when null); din[b] = dL/d(the state entering
// chunk 0) (when not null).
__global__ void suffix_scan_kernel(float* dPG, float* din, const float* g_end, const float* decay, int B, int n,
                                   int H, int dd, int L) {
  const size_t idx = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  const size_t per_b = static_cast<size_t>(H) * dd;
  if (idx >= static_cast<size_t>(B) * per_b) return;
  const size_t b = idx / per_b, within = idx % per_b;
  const int h = static_cast<int>(within / dd);
  const double w = exp(static_cast<double>(L) * log(static_cast<double>(decay[h])));
  double acc = g_end ? g_end[idx] : 0.0;
  for (int j = n - 1; j >= 0; --j) {
    float* slot = dPG + (b * n + j) * per_b + within;
    const double dp = *slot;
    *slot = static_cast<float>(acc);
    acc = dp + w * acc;
  }
  if (din) din[idx] = static_cast<float>(acc);
}

unsigned scan_blocks(size_t n) { return static_cast<unsigned>((n + kScanThreads - 1) / kScanThreads); }

void launch_sequential_forward(cudaStream_t s, float* o, const float* q, const float* k, const float* v,
                               const float* decay, const float* state_in, float* state_out,
                               const LinearAttentionDims& m) {
  if (m.B == 0 || m.T == 0) {
    if (state_out && m.B > 0) {  // no tokens: the state passes through
      const size_t bytes = sizeof(float) * static_cast<size_t>(m.B) * m.H * m.d * m.d;
      if (state_in) LT_CUDA_CHECK(cudaMemcpyAsync(state_out, state_in, bytes, cudaMemcpyDeviceToDevice, s));
      else LT_CUDA_CHECK(cudaMemsetAsync(state_out, 0, bytes, s));
    }
    return;
  }
  const size_t smem = forward_smem(m.d);
  prepare_launch(linear_forward_kernel, "linear_attention_forward", m.d, smem);
  LT_CUDA_CHECK_LAUNCH(
      (linear_forward_kernel<<<m.B * m.H, m.d, smem, s>>>(m, o, q, k, v, decay, state_in, state_out)));
}

void launch_sequential_backward(cudaStream_t s, float* dq, float* dk, float* dv, float* dstate_in,
                                const float* dout, const float* dstate_out, const float* q, const float* k,
                                const float* v, const float* decay, const float* state_in,
                                const LinearAttentionDims& m) {
  if (m.B == 0) return;
  const size_t smem = backward_smem(m.d);
  prepare_launch(linear_backward_kernel, "linear_attention_backward", m.d, smem);
  LT_CUDA_CHECK_LAUNCH((linear_backward_kernel<<<m.B * m.KVH, m.d, smem, s>>>(
      m, dq, dk, dv, dstate_in, dout, dstate_out, q, k, v, decay, state_in)));
}

// Rows [row0, ...) of every buffer: the pointers of one sequence's slice.
struct Rows {
  const LinearAttentionDims& m;
  size_t row0;
  template <typename T>
  T* q(T* p) const { return p ? p + row0 * m.ldq : nullptr; }
  template <typename T>
  T* k(T* p) const { return p ? p + row0 * m.ldk : nullptr; }
  template <typename T>
  T* v(T* p) const { return p ? p + row0 * m.ldv : nullptr; }
  template <typename T>
  T* o(T* p) const { return p ? p + row0 * m.ldo : nullptr; }
};

// The (sequences, first sequence) groups the chunked passes run over: all B
// sequences at once when the chunks tile them (no tail), else one at a time.
template <typename F>
void for_each_group(const LinearAttentionDims& m, const ChunkPlan& p, F f) {
  if (p.tail == 0) f(m.B, 0);
  else
    for (int b = 0; b < m.B; ++b) f(1, b);
}

size_t chunk_scratch_floats(const LinearAttentionDims& m, const ChunkPlan& p) {
  const size_t dd = static_cast<size_t>(m.d) * m.d;
  const int group = p.tail == 0 ? m.B : 1;
  // P and G/dP per chunk of the group, the end states of the group.
  return 2 * static_cast<size_t>(group) * p.n * m.H * dd + 2 * static_cast<size_t>(group) * m.H * dd;
}

}  // namespace

size_t linear_attention_forward_scratch_bytes(const LinearAttentionDims& m) {
  const ChunkPlan p = plan_chunks(m);
  if (!p.chunked()) return 0;
  return arena_round(sizeof(float) * chunk_scratch_floats(m, p)) +
         lasp2_terms_scratch_bytes(chunk_dims(m, m.B * p.n, p.L));
}

size_t linear_attention_backward_scratch_bytes(const LinearAttentionDims& m) {
  return linear_attention_forward_scratch_bytes(m);
}

void linear_attention_forward(void* stream, Arena& arena, float* o, const float* q, const float* k, const float* v,
                              const float* decay, const float* state_in, float* state_out,
                              const LinearAttentionDims& m) {
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  const ChunkPlan p = plan_chunks(m);
  if (!p.chunked()) return launch_sequential_forward(s, o, q, k, v, decay, state_in, state_out, m);
  const size_t dd = static_cast<size_t>(m.d) * m.d, hdd = static_cast<size_t>(m.H) * dd;
  for_each_group(m, p, [&](int group, int b0) {
    ScratchScope scratch(arena);
    float* P = scratch.take<float>(static_cast<size_t>(group) * p.n * hdd, "linear_attention_forward");
    float* last = scratch.take<float>(static_cast<size_t>(group) * hdd, "linear_attention_forward");
    const Rows rows{m, static_cast<size_t>(b0) * m.T};
    const LinearAttentionDims c = chunk_dims(m, group * p.n, p.L);
    lasp2_chunk_state(stream, arena, P, rows.k(k), rows.v(v), decay, c);
    const float* sin = state_in ? state_in + b0 * hdd : nullptr;
    LT_CUDA_CHECK_LAUNCH((prefix_scan_kernel<<<scan_blocks(group * hdd), kScanThreads, 0, s>>>(
        P, last, sin, decay, group, p.n, m.H, static_cast<int>(dd), p.L)));
    launch_sequential_forward(s, rows.o(o), rows.q(q), rows.k(k), rows.v(v), decay, P, nullptr, c);
    float* sout = state_out ? state_out + b0 * hdd : nullptr;
    if (p.tail > 0) {
      const Rows tail{m, static_cast<size_t>(b0) * m.T + static_cast<size_t>(p.n) * p.L};
      launch_sequential_forward(s, tail.o(o), tail.q(q), tail.k(k), tail.v(v), decay, last, sout,
                                chunk_dims(m, 1, p.tail));
    } else if (sout) {
      LT_CUDA_CHECK(cudaMemcpyAsync(sout, last, sizeof(float) * group * hdd, cudaMemcpyDeviceToDevice, s));
    }
  });
}

void linear_attention_backward(void* stream, Arena& arena, float* dq, float* dk, float* dv, float* dstate_in,
                               const float* dout, const float* dstate_out, const float* q, const float* k,
                               const float* v, const float* decay, const float* state_in,
                               const LinearAttentionDims& m) {
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  const ChunkPlan p = plan_chunks(m);
  if (!p.chunked())
    return launch_sequential_backward(s, dq, dk, dv, dstate_in, dout, dstate_out, q, k, v, decay, state_in, m);
  const size_t dd = static_cast<size_t>(m.d) * m.d, hdd = static_cast<size_t>(m.H) * dd;
  for_each_group(m, p, [&](int group, int b0) {
    ScratchScope scratch(arena);
    float* P = scratch.take<float>(static_cast<size_t>(group) * p.n * hdd, "linear_attention_backward");
    float* G = scratch.take<float>(static_cast<size_t>(group) * p.n * hdd, "linear_attention_backward");
    float* last = scratch.take<float>(static_cast<size_t>(group) * hdd, "linear_attention_backward");
    float* g_end = scratch.take<float>(static_cast<size_t>(group) * hdd, "linear_attention_backward");
    const Rows rows{m, static_cast<size_t>(b0) * m.T};
    const LinearAttentionDims c = chunk_dims(m, group * p.n, p.L);
    // The states entering the chunks, as in the forward.
    lasp2_chunk_state(stream, arena, P, rows.k(k), rows.v(v), decay, c);
    const float* sin = state_in ? state_in + b0 * hdd : nullptr;
    LT_CUDA_CHECK_LAUNCH((prefix_scan_kernel<<<scan_blocks(group * hdd), kScanThreads, 0, s>>>(
        P, last, sin, decay, group, p.n, m.H, static_cast<int>(dd), p.L)));
    // dL/d(the state after the whole chunks): through the tail, or dstate_out.
    const float* dsout = dstate_out ? dstate_out + b0 * hdd : nullptr;
    const float* end_grad = dsout;
    if (p.tail > 0) {
      const Rows tail{m, static_cast<size_t>(b0) * m.T + static_cast<size_t>(p.n) * p.L};
      launch_sequential_backward(s, tail.q(dq), tail.k(dk), tail.v(dv), g_end, tail.o(dout), dsout, tail.q(q),
                                 tail.k(k), tail.v(v), decay, last, chunk_dims(m, 1, p.tail));
      end_grad = g_end;
    }
    lasp2_prefix_state_grad(stream, arena, G, rows.q(q), rows.o(dout), decay, c);
    float* din = dstate_in ? dstate_in + b0 * hdd : nullptr;
    LT_CUDA_CHECK_LAUNCH((suffix_scan_kernel<<<scan_blocks(group * hdd), kScanThreads, 0, s>>>(
        G, din, end_grad, decay, group, p.n, m.H, static_cast<int>(dd), p.L)));
    launch_sequential_backward(s, rows.q(dq), rows.k(dk), rows.v(dv), nullptr, rows.o(dout), G, rows.q(q),
                               rows.k(k), rows.v(v), decay, P, c);
  });
}

}  // namespace lintrain::cuda
