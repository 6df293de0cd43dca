// The LASP-2 chunk-boundary terms and state merges on CUDA (the ops and their
// math: runtime/ops.h). Each term is a batch of small products against the
// d x d states; here one thread computes one output element as a dot product
// in a fixed order (simple and deterministic, no atomics; no tensor cores).
// The decay powers lambda_h^n, n = 0..C, are computed once per call into
// scratch, exp(n log lambda) in double rounded to fp32 as on the CPU.
#include <cuda_runtime.h>

#include "runtime/arena.h"
#include "runtime/backend.h"
#include "runtime/cuda/check.h"

namespace lintrain::cuda {

namespace {

constexpr int kThreads = 256;

unsigned blocks_for(size_t n) { return static_cast<unsigned>((n + kThreads - 1) / kThreads); }

__device__ size_t row_of(int b, int T, int t) { return static_cast<size_t>(b) * T + t; }

// pw[h * (C + 1) + n] = lambda_h^n for n = 0..C.
__global__ void decay_powers_kernel(float* pw, const float* decay, int H, int C) {
  const size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (i >= static_cast<size_t>(H) * (C + 1)) return;
  const int h = static_cast<int>(i / (C + 1)), n = static_cast<int>(i % (C + 1));
  pw[i] = static_cast<float>(exp(n * log(static_cast<double>(decay[h]))));
}

// The powers of every head for a chunk of m.T tokens, in scratch.
const float* decay_powers(cudaStream_t s, ScratchScope& scratch, const char* op, const float* decay,
                          const LinearAttentionDims& m) {
  const size_t n = static_cast<size_t>(m.H) * (m.T + 1);
  float* pw = scratch.take<float>(n, op);
  LT_CUDA_CHECK_LAUNCH((decay_powers_kernel<<<blocks_for(n), kThreads, 0, s>>>(pw, decay, m.H, m.T)));
  return pw;
}

// M[b,h][i][c] = sum_s (Lk[s] k_s[i]) v_s[c], Lk[s] = lambda^(C-1-s).
__global__ void chunk_state_kernel(LinearAttentionDims m, float* M, const float* k, const float* v,
                                   const float* pw) {
  const size_t idx = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  const size_t dd = static_cast<size_t>(m.d) * m.d;
  if (idx >= static_cast<size_t>(m.B) * m.H * dd) return;
  const int c = static_cast<int>(idx % m.d), i = static_cast<int>((idx / m.d) % m.d);
  const int h = static_cast<int>((idx / dd) % m.H), b = static_cast<int>(idx / (dd * m.H));
  const int g = h / (m.H / m.KVH);
  const float* w = pw + static_cast<size_t>(h) * (m.T + 1);
  float acc = 0.0f;
  for (int s = 0; s < m.T; ++s)
    acc += w[m.T - 1 - s] * k[row_of(b, m.T, s) * m.ldk + g * m.d + i] * v[row_of(b, m.T, s) * m.ldv + g * m.d + c];
  M[idx] = acc;
}

// o[b,t,h][c] += sum_i (Lq[t] q_t[i]) P[b,h][i][c], Lq[t] = lambda^(t+1).
__global__ void prefix_output_kernel(LinearAttentionDims m, float* o, const float* q, const float* P,
                                     const float* pw) {
  const size_t idx = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (idx >= static_cast<size_t>(m.B) * m.T * m.H * m.d) return;
  const int c = static_cast<int>(idx % m.d), h = static_cast<int>((idx / m.d) % m.H);
  const size_t row = idx / (static_cast<size_t>(m.d) * m.H);  // b * T + t
  const int t = static_cast<int>(row % m.T), b = static_cast<int>(row / m.T);
  const float w = pw[static_cast<size_t>(h) * (m.T + 1) + t + 1];
  const float* qt = q + row * m.ldq + h * m.d;
  const float* Ph = P + (static_cast<size_t>(b) * m.H + h) * m.d * m.d;
  float acc = 0.0f;
  for (int i = 0; i < m.d; ++i) acc += (w * qt[i]) * Ph[static_cast<size_t>(i) * m.d + c];
  o[row * m.ldo + h * m.d + c] += acc;
}

// dP[b,h][i][c] = sum_t (Lq[t] q_t[i]) dO_t[c].
__global__ void prefix_state_grad_kernel(LinearAttentionDims m, float* dP, const float* q, const float* dout,
                                         const float* pw) {
  const size_t idx = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  const size_t dd = static_cast<size_t>(m.d) * m.d;
  if (idx >= static_cast<size_t>(m.B) * m.H * dd) return;
  const int c = static_cast<int>(idx % m.d), i = static_cast<int>((idx / m.d) % m.d);
  const int h = static_cast<int>((idx / dd) % m.H), b = static_cast<int>(idx / (dd * m.H));
  const float* w = pw + static_cast<size_t>(h) * (m.T + 1);
  float acc = 0.0f;
  for (int t = 0; t < m.T; ++t)
    acc += (w[t + 1] * q[row_of(b, m.T, t) * m.ldq + h * m.d + i]) * dout[row_of(b, m.T, t) * m.ldo + h * m.d + c];
  dP[idx] = acc;
}

// dq[b,t,h][i] += sum_c (Lq[t] dO_t[c]) P[b,h][i][c].
__global__ void prefix_dq_kernel(LinearAttentionDims m, float* dq, const float* dout, const float* P,
                                 const float* pw) {
  const size_t idx = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (idx >= static_cast<size_t>(m.B) * m.T * m.H * m.d) return;
  const int i = static_cast<int>(idx % m.d), h = static_cast<int>((idx / m.d) % m.H);
  const size_t row = idx / (static_cast<size_t>(m.d) * m.H);
  const int t = static_cast<int>(row % m.T), b = static_cast<int>(row / m.T);
  const float w = pw[static_cast<size_t>(h) * (m.T + 1) + t + 1];
  const float* dot = dout + row * m.ldo + h * m.d;
  const float* Pi = P + ((static_cast<size_t>(b) * m.H + h) * m.d + i) * m.d;
  float acc = 0.0f;
  for (int c = 0; c < m.d; ++c) acc += (w * dot[c]) * Pi[c];
  dq[row * m.ldq + h * m.d + i] += acc;
}

// For kv head g, element e: dk_t[e] += sum_h sum_c (Lk_h[t] v_t[c]) G_h[e][c],
// dv_t[e] += sum_h sum_i (Lk_h[t] k_t[i]) G_h[i][e], query heads h of g in order.
__global__ void suffix_dkdv_kernel(LinearAttentionDims m, float* dk, float* dv, const float* k, const float* v,
                                   const float* G, const float* pw) {
  const size_t idx = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  if (idx >= static_cast<size_t>(m.B) * m.T * m.KVH * m.d) return;
  const int e = static_cast<int>(idx % m.d), g = static_cast<int>((idx / m.d) % m.KVH);
  const size_t row = idx / (static_cast<size_t>(m.d) * m.KVH);
  const int t = static_cast<int>(row % m.T), b = static_cast<int>(row / m.T);
  const int group = m.H / m.KVH, d = m.d;
  const float* kt = k + row * m.ldk + g * d;
  const float* vt = v + row * m.ldv + g * d;
  float* dkt = dk + row * m.ldk + g * d;
  float* dvt = dv + row * m.ldv + g * d;
  float xk = dkt[e], xv = dvt[e];
  for (int h = g * group; h < (g + 1) * group; ++h) {
    const float w = pw[static_cast<size_t>(h) * (m.T + 1) + m.T - 1 - t];
    const float* Gh = G + (static_cast<size_t>(b) * m.H + h) * d * d;
    float ak = 0.0f, av = 0.0f;
    for (int c = 0; c < d; ++c) ak += (w * vt[c]) * Gh[static_cast<size_t>(e) * d + c];
    for (int i = 0; i < d; ++i) av += (w * kt[i]) * Gh[static_cast<size_t>(i) * d + e];
    xk += ak;
    xv += av;
  }
  dkt[e] = xk;
  dvt[e] = xv;
}

// out[bh][e] = sum_{u in [u0, u1)} lambda_h^(C n(u)) gathered[u][bh][e] in double, u increasing.
__global__ void merge_states_kernel(float* out, const float* gathered, int u0, int u1, int j, bool suffix, int B,
                                    int H, int d, int C, const float* decay) {
  const size_t idx = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  const size_t dd = static_cast<size_t>(d) * d, per_rank = static_cast<size_t>(B) * H * dd;
  if (idx >= per_rank) return;
  const int h = static_cast<int>((idx / dd) % H);
  const double log_lambda = log(static_cast<double>(decay[h]));
  double acc = 0.0;
  for (int u = u0; u < u1; ++u) {
    const int n = suffix ? u - 1 - j : j - 1 - u;
    const double w = exp(static_cast<double>(C) * n * log_lambda);
    if (w == 0.0) continue;  // underflow: the term is exactly zero
    acc += w * gathered[u * per_rank + idx];
  }
  out[idx] = static_cast<float>(acc);
}

}  // namespace

size_t lasp2_terms_scratch_bytes(const LinearAttentionDims& m) {
  return arena_round(static_cast<size_t>(m.H) * (m.T + 1) * sizeof(float));  // the decay powers
}

void lasp2_chunk_state(void* stream, Arena& arena, float* M, const float* k, const float* v, const float* decay,
                       const LinearAttentionDims& m) {
  auto s = static_cast<cudaStream_t>(stream);
  ScratchScope scratch(arena);
  const float* pw = decay_powers(s, scratch, "lasp2_chunk_state", decay, m);
  const size_t n = static_cast<size_t>(m.B) * m.H * m.d * m.d;
  LT_CUDA_CHECK_LAUNCH((chunk_state_kernel<<<blocks_for(n), kThreads, 0, s>>>(m, M, k, v, pw)));
}

void lasp2_add_prefix_output(void* stream, Arena& arena, float* o, const float* q, const float* P,
                             const float* decay, const LinearAttentionDims& m) {
  auto s = static_cast<cudaStream_t>(stream);
  ScratchScope scratch(arena);
  const float* pw = decay_powers(s, scratch, "lasp2_add_prefix_output", decay, m);
  const size_t n = static_cast<size_t>(m.B) * m.T * m.H * m.d;
  LT_CUDA_CHECK_LAUNCH((prefix_output_kernel<<<blocks_for(n), kThreads, 0, s>>>(m, o, q, P, pw)));
}

void lasp2_prefix_state_grad(void* stream, Arena& arena, float* dP, const float* q, const float* dout,
                             const float* decay, const LinearAttentionDims& m) {
  auto s = static_cast<cudaStream_t>(stream);
  ScratchScope scratch(arena);
  const float* pw = decay_powers(s, scratch, "lasp2_prefix_state_grad", decay, m);
  const size_t n = static_cast<size_t>(m.B) * m.H * m.d * m.d;
  LT_CUDA_CHECK_LAUNCH((prefix_state_grad_kernel<<<blocks_for(n), kThreads, 0, s>>>(m, dP, q, dout, pw)));
}

void lasp2_add_prefix_dq(void* stream, Arena& arena, float* dq, const float* dout, const float* P,
                         const float* decay, const LinearAttentionDims& m) {
  auto s = static_cast<cudaStream_t>(stream);
  ScratchScope scratch(arena);
  const float* pw = decay_powers(s, scratch, "lasp2_add_prefix_dq", decay, m);
  const size_t n = static_cast<size_t>(m.B) * m.T * m.H * m.d;
  LT_CUDA_CHECK_LAUNCH((prefix_dq_kernel<<<blocks_for(n), kThreads, 0, s>>>(m, dq, dout, P, pw)));
}

void lasp2_add_suffix_dkdv(void* stream, Arena& arena, float* dk, float* dv, const float* k, const float* v,
                           const float* G, const float* decay, const LinearAttentionDims& m) {
  auto s = static_cast<cudaStream_t>(stream);
  ScratchScope scratch(arena);
  const float* pw = decay_powers(s, scratch, "lasp2_add_suffix_dkdv", decay, m);
  const size_t n = static_cast<size_t>(m.B) * m.T * m.KVH * m.d;
  LT_CUDA_CHECK_LAUNCH((suffix_dkdv_kernel<<<blocks_for(n), kThreads, 0, s>>>(m, dk, dv, k, v, G, pw)));
}

size_t lasp2_merge_states_scratch_bytes(int, int, int) { return 0; }

void lasp2_merge_states(void* stream, Arena&, float* out, const float* gathered, int W, int j, bool suffix, int B,
                        int H, int d, int C, const float* decay) {
  const int u0 = suffix ? j + 1 : 0, u1 = suffix ? W : j;
  const size_t n = static_cast<size_t>(B) * H * d * d;
  LT_CUDA_CHECK_LAUNCH((merge_states_kernel<<<blocks_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      out, gathered, u0, u1, j, suffix, B, H, d, C, decay)));
}

namespace {

// One thread per (b, h, element) of the per-sequence arrays; see
// lasp2_scan_states in runtime/ops.h. Consecutive threads take consecutive
// elements, so each step of the scan reads and writes coalesced.
__global__ void scan_states_kernel(float* states, float* last, const float* first, const float* decay, int B, int n,
                                   int H, int dd, int L, bool reverse) {
  const size_t idx = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x;
  const size_t per_b = static_cast<size_t>(H) * dd;
  if (idx >= static_cast<size_t>(B) * per_b) return;
  const size_t b = idx / per_b, within = idx % per_b;
  const int h = static_cast<int>(within / dd);
  const double w = exp(static_cast<double>(L) * log(static_cast<double>(decay[h])));
  double acc = first ? first[idx] : 0.0;
  for (int i = 0; i < n; ++i) {
    const int j = reverse ? n - 1 - i : i;
    float* slot = states + (b * n + j) * per_b + within;
    const double old = *slot;
    *slot = static_cast<float>(acc);
    acc = w * acc + old;
  }
  if (last) last[idx] = static_cast<float>(acc);
}

}  // namespace

void lasp2_scan_states(void* stream, float* states, float* last, const float* first, const float* decay, int B, int n,
                       int H, int d, int L, bool reverse) {
  const size_t total = static_cast<size_t>(B) * H * d * d;
  if (total == 0) return;
  LT_CUDA_CHECK_LAUNCH((scan_states_kernel<<<blocks_for(total), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      states, last, first, decay, B, n, H, d * d, L, reverse)));
}

}  // namespace lintrain::cuda
