// Causal linear attention with per-head decay on CUDA (the op and its math:
// runtime/ops.h): the recurrence
//     S_t = lambda S_{t-1} + k_t^T v_t,   o_t = q_t S_t
// token by token in FP32 (no tensor cores yet), with the d x d state of one
// head in shared memory and one thread per row or column of it (d threads per
// block). Long sequences do not come here whole: the op cuts them into chunks
// that run as one batch (linear_attention_forward_chunked, runtime/ops.h), so
// a block's depth is a chunk, not the sequence. Tokens are staged
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

size_t linear_attention_forward_scratch_bytes(const LinearAttentionDims&) { return 0; }
size_t linear_attention_backward_scratch_bytes(const LinearAttentionDims&) { return 0; }

void linear_attention_forward(void* stream, Arena&, float* o, const float* q, const float* k, const float* v,
                              const float* decay, const float* state_in, float* state_out,
                              const LinearAttentionDims& m) {
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (m.B == 0) return;
  if (m.T == 0) {  // no tokens: the state passes through
    if (state_out) {
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

void linear_attention_backward(void* stream, Arena&, float* dq, float* dk, float* dv, float* dstate_in,
                               const float* dout, const float* dstate_out, const float* q, const float* k,
                               const float* v, const float* decay, const float* state_in,
                               const LinearAttentionDims& m) {
  if (m.B == 0) return;
  const size_t smem = backward_smem(m.d);
  prepare_launch(linear_backward_kernel, "linear_attention_backward", m.d, smem);
  LT_CUDA_CHECK_LAUNCH((linear_backward_kernel<<<m.B * m.KVH, m.d, smem, static_cast<cudaStream_t>(stream)>>>(
      m, dq, dk, dv, dstate_in, dout, dstate_out, q, k, v, decay, state_in)));
}

}  // namespace lintrain::cuda
