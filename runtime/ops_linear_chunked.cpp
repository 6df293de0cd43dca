// Linear attention, chunk-parallel (runtime/ops.h: linear_attention_forward_chunked
// and friends): LASP-2's decomposition applied inside one device, the chunks
// of each sequence playing the SP ranks. Written once on the ops, so the CPU
// runs the very schedule CUDA runs (the tests compare it with the CPU's
// blockwise body); only the bodies underneath differ per device.
#include <algorithm>

#include "runtime/arena.h"
#include "runtime/backend.h"
#include "runtime/error.h"
#include "runtime/ops.h"

namespace lintrain {

namespace {

bool on_cpu(const Context& ctx) { return ctx.device == Device::CPU; }

constexpr int kMinChunk = 64;        // shorter chunks are not worth the two scans
constexpr int kTargetBlocks = 2048;  // (sequence, chunk, head) blocks that fill an H100/H200

// n whole chunks of L tokens per sequence, then `tail` more.
struct ChunkPlan {
  int n = 1, L = 0, tail = 0;
};

ChunkPlan plan(const LinearAttentionDims& m, int chunks) {
  ChunkPlan p;
  p.n = std::max(1, std::min(chunks, m.T));
  p.L = m.T / p.n;
  p.tail = m.T - p.n * p.L;
  return p;
}

// `batch` chunk-sequences of L tokens with m's heads and strides.
LinearAttentionDims chunk_dims(const LinearAttentionDims& m, int batch, int L) {
  LinearAttentionDims c = m;
  c.B = batch;
  c.T = L;
  return c;
}

// The chunks of all B sequences form one batch when they tile the sequences
// exactly (row b T + j L is chunk b n + j); with a tail, one sequence at a time.
int group_size(const LinearAttentionDims& m, const ChunkPlan& p) { return p.tail == 0 ? m.B : 1; }

// The rows of one group (or its tail) in each buffer.
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

// The device's plain bodies (no further chunking).
void body_forward(const Context& ctx, Arena& scratch, float* o, const float* q, const float* k, const float* v,
                  const float* decay, const float* state_in, float* state_out, const LinearAttentionDims& m) {
  if (on_cpu(ctx)) cpu::linear_attention_forward(scratch, o, q, k, v, decay, state_in, state_out, m);
  else cuda::linear_attention_forward(ctx.stream, scratch, o, q, k, v, decay, state_in, state_out, m);
}

void body_backward(const Context& ctx, Arena& scratch, float* dq, float* dk, float* dv, float* dstate_in,
                   const float* dout, const float* dstate_out, const float* q, const float* k, const float* v,
                   const float* decay, const float* state_in, const LinearAttentionDims& m) {
  if (on_cpu(ctx))
    cpu::linear_attention_backward(scratch, dq, dk, dv, dstate_in, dout, dstate_out, q, k, v, decay, state_in, m);
  else
    cuda::linear_attention_backward(ctx.stream, scratch, dq, dk, dv, dstate_in, dout, dstate_out, q, k, v, decay,
                                    state_in, m);
}

size_t body_scratch(Device device, const LinearAttentionDims& m) {
  if (m.B == 0) return 0;
  return device == Device::CPU
             ? std::max(cpu::linear_attention_forward_scratch_bytes(m), cpu::linear_attention_backward_scratch_bytes(m))
             : std::max(cuda::linear_attention_forward_scratch_bytes(m),
                        cuda::linear_attention_backward_scratch_bytes(m));
}

void check_chunks(const char* op, const LinearAttentionDims& m, int chunks) {
  LT_CHECK(chunks >= 1 && chunks <= std::max(1, m.T), "[", op, "] chunks = ", chunks, " must be in [1, T = ", m.T,
           "]");
}

}  // namespace

int linear_attention_chunk_count(Device device, const LinearAttentionDims& m) {
  if (device == Device::CPU || m.B <= 0 || m.H <= 0) return 1;
  const int most = m.T / kMinChunk;
  const int want = std::max(1, kTargetBlocks / std::max(1, m.B * m.H));
  const int n = std::min(most, want);
  return n >= 2 ? n : 1;
}

size_t linear_attention_chunked_scratch_bytes(Device device, const LinearAttentionDims& m, int chunks) {
  const ChunkPlan p = plan(m, chunks);
  const size_t hdd = static_cast<size_t>(m.H) * m.d * m.d;
  const size_t group = static_cast<size_t>(group_size(m, p));
  // P and G per chunk of a group, and two end states per sequence of it.
  const size_t own = 2 * arena_round(sizeof(float) * group * p.n * hdd) + 2 * arena_round(sizeof(float) * group * hdd);
  const LinearAttentionDims c = chunk_dims(m, static_cast<int>(group) * p.n, p.L);
  size_t inner = std::max(body_scratch(device, c), lasp2_terms_scratch_bytes(device, c));
  if (p.tail > 0) inner = std::max(inner, body_scratch(device, chunk_dims(m, 1, p.tail)));
  return own + inner;
}

void lasp2_scan_states(const Context& ctx, float* states, float* last, const float* first, const float* decay, int B,
                       int n, int H, int d, int L, bool reverse) {
  LT_CHECK(B >= 0 && n >= 0 && H >= 1 && d >= 1 && L >= 0, "[lasp2_scan_states] need B, n, L >= 0 and H, d >= 1, got B=",
           B, " n=", n, " H=", H, " d=", d, " L=", L);
  if (B == 0) return;
  LT_CHECK(decay != nullptr && (states != nullptr || n == 0), "[lasp2_scan_states] a null buffer");
  if (on_cpu(ctx)) cpu::lasp2_scan_states(states, last, first, decay, B, n, H, d, L, reverse);
  else cuda::lasp2_scan_states(ctx.stream, states, last, first, decay, B, n, H, d, L, reverse);
}

void linear_attention_forward_chunked(const Context& ctx, int chunks, float* o, const float* q, const float* k,
                                      const float* v, const float* decay, const float* state_in, float* state_out,
                                      const LinearAttentionDims& m) {
  const char* op = "linear_attention_forward_chunked";
  check_chunks(op, m, chunks);
  if (m.B == 0) return;
  Arena& arena = ctx.arena(op);
  const ChunkPlan p = plan(m, chunks);
  if (p.n == 1) return body_forward(ctx, arena, o, q, k, v, decay, state_in, state_out, m);
  const size_t hdd = static_cast<size_t>(m.H) * m.d * m.d;
  const int group = group_size(m, p);
  for (int b0 = 0; b0 < m.B; b0 += group) {
    ScratchScope scratch(arena);
    float* P = scratch.take<float>(static_cast<size_t>(group) * p.n * hdd, op);
    float* last = scratch.take<float>(static_cast<size_t>(group) * hdd, op);
    const Rows rows{m, static_cast<size_t>(b0) * m.T};
    const LinearAttentionDims c = chunk_dims(m, group * p.n, p.L);
    // M_j of every chunk, then P_j by the scan (last = the state after them).
    lasp2_chunk_state(ctx, P, rows.k(k), rows.v(v), decay, c);
    lasp2_scan_states(ctx, P, last, state_in ? state_in + b0 * hdd : nullptr, decay, group, p.n, m.H, m.d, p.L,
                      /*reverse=*/false);
    body_forward(ctx, arena, rows.o(o), rows.q(q), rows.k(k), rows.v(v), decay, P, nullptr, c);
    float* out = state_out ? state_out + b0 * hdd : nullptr;
    if (p.tail > 0) {
      const Rows tail{m, static_cast<size_t>(b0) * m.T + static_cast<size_t>(p.n) * p.L};
      body_forward(ctx, arena, tail.o(o), tail.q(q), tail.k(k), tail.v(v), decay, last, out,
                   chunk_dims(m, 1, p.tail));
    } else if (out) {
      copy_floats(ctx, out, last, static_cast<int64_t>(group * hdd));
    }
  }
}

void linear_attention_backward_chunked(const Context& ctx, int chunks, float* dq, float* dk, float* dv,
                                       float* dstate_in, const float* dout, const float* dstate_out, const float* q,
                                       const float* k, const float* v, const float* decay, const float* state_in,
                                       const LinearAttentionDims& m) {
  const char* op = "linear_attention_backward_chunked";
  check_chunks(op, m, chunks);
  if (m.B == 0) return;
  Arena& arena = ctx.arena(op);
  const ChunkPlan p = plan(m, chunks);
  if (p.n == 1)
    return body_backward(ctx, arena, dq, dk, dv, dstate_in, dout, dstate_out, q, k, v, decay, state_in, m);
  const size_t hdd = static_cast<size_t>(m.H) * m.d * m.d;
  const int group = group_size(m, p);
  for (int b0 = 0; b0 < m.B; b0 += group) {
    ScratchScope scratch(arena);
    float* P = scratch.take<float>(static_cast<size_t>(group) * p.n * hdd, op);
    float* G = scratch.take<float>(static_cast<size_t>(group) * p.n * hdd, op);
    float* last = scratch.take<float>(static_cast<size_t>(group) * hdd, op);
    float* g_end = scratch.take<float>(static_cast<size_t>(group) * hdd, op);
    const Rows rows{m, static_cast<size_t>(b0) * m.T};
    const LinearAttentionDims c = chunk_dims(m, group * p.n, p.L);
    // The states entering the chunks, as in the forward.
    lasp2_chunk_state(ctx, P, rows.k(k), rows.v(v), decay, c);
    lasp2_scan_states(ctx, P, last, state_in ? state_in + b0 * hdd : nullptr, decay, group, p.n, m.H, m.d, p.L,
                      /*reverse=*/false);
    // dL/d(the state after the whole chunks): through the tail, else dstate_out.
    const float* end_grad = dstate_out ? dstate_out + b0 * hdd : nullptr;
    if (p.tail > 0) {
      const Rows tail{m, static_cast<size_t>(b0) * m.T + static_cast<size_t>(p.n) * p.L};
      body_backward(ctx, arena, tail.q(dq), tail.k(dk), tail.v(dv), g_end, tail.o(dout), end_grad, tail.q(q),
                    tail.k(k), tail.v(v), decay, last, chunk_dims(m, 1, p.tail));
      end_grad = g_end;
    }
    // dP_j from each chunk's own outputs; the reverse scan makes them the
    // gradients of the chunks' end states and yields dL/dstate_in.
    lasp2_prefix_state_grad(ctx, G, rows.q(q), rows.o(dout), decay, c);
    lasp2_scan_states(ctx, G, dstate_in ? dstate_in + b0 * hdd : nullptr, end_grad, decay, group, p.n, m.H, m.d, p.L,
                      /*reverse=*/true);
    body_backward(ctx, arena, rows.q(dq), rows.k(dk), rows.v(dv), nullptr, rows.o(dout), G, rows.q(q), rows.k(k),
                  rows.v(v), decay, P, c);
  }
}

}  // namespace lintrain
