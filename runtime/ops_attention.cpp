// Argument checks and device dispatch of the attention ops of runtime/ops.h:
// both attention cores, the five LASP-2 chunk-boundary terms and the state
// merges. The bodies assume what is checked here.
#include <cstddef>

#include "runtime/backend.h"
#include "runtime/error.h"
#include "runtime/ops.h"

namespace lintrain {

namespace {

bool on_cpu(const Context& ctx) { return ctx.device == Device::CPU; }

void check_not_null(const char* op, std::initializer_list<const void*> pointers) {
  int i = 0;
  for (const void* p : pointers) {
    LT_CHECK(p != nullptr, "[", op, "] pointer argument ", i, " is null");
    ++i;
  }
}

// Decay values are read here only on the CPU (on other devices they are not
// host memory; the layers check their host copies when they are built).
void check_decays(const char* op, const Context& ctx, const float* decay, int H) {
  LT_CHECK(decay != nullptr, "[", op, "] decay is null; pass H values in (0, 1]");
  if (!on_cpu(ctx)) return;
  for (int h = 0; h < H; ++h)
    LT_CHECK(decay[h] > 0.0f && decay[h] <= 1.0f, "[", op, "] decay[", h, "]=", decay[h],
             " must be in (0, 1] (1 = no decay)");
}

void check_softmax_dims(const char* op, const AttentionDims& a, int ldq, int ldk, int ldv, int ldo) {
  LT_CHECK(a.B >= 0 && a.Tq >= 0 && a.Tk >= 0, "[", op, "] negative size B=", a.B, " Tq=", a.Tq, " Tk=", a.Tk);
  LT_CHECK(a.H > 0 && a.KVH > 0 && a.H % a.KVH == 0, "[", op, "] query heads H=", a.H,
           " must be a positive multiple of kv heads KVH=", a.KVH);
  LT_CHECK(a.d > 0, "[", op, "] head dimension d must be > 0, got ", a.d);
  LT_CHECK(a.q_block > 0, "[", op, "] q_block must be > 0, got ", a.q_block);
  LT_CHECK(a.q_offset >= 0 && a.Tk >= a.q_offset + a.Tq, "[", op, "] queries at positions [", a.q_offset, ", ",
           a.q_offset + a.Tq, ") need keys up to there, but Tk=", a.Tk, " (need Tk >= q_offset + Tq)");
  LT_CHECK(ldq >= a.H * a.d && ldo >= a.H * a.d, "[", op, "] q/o row strides (", ldq, ", ", ldo,
           ") must be >= H*d = ", a.H * a.d);
  LT_CHECK(ldk >= a.KVH * a.d && ldv >= a.KVH * a.d, "[", op, "] k/v row strides (", ldk, ", ", ldv,
           ") must be >= KVH*d = ", a.KVH * a.d);
}

void check_linear_dims(const char* op, const Context& ctx, const LinearAttentionDims& m, const float* decay) {
  LT_CHECK(m.B >= 0 && m.T >= 0, "[", op, "] B and T must be >= 0, got B=", m.B, " T=", m.T);
  LT_CHECK(m.H >= 1 && m.KVH >= 1 && m.H % m.KVH == 0, "[", op,
           "] need H >= 1, KVH >= 1 and H % KVH == 0, got H=", m.H, " KVH=", m.KVH);
  LT_CHECK(m.d >= 1, "[", op, "] head dim d must be >= 1, got ", m.d);
  LT_CHECK(m.block >= 1, "[", op, "] block must be >= 1, got ", m.block);
  LT_CHECK(m.ldq >= m.H * m.d && m.ldo >= m.H * m.d, "[", op, "] ldq=", m.ldq, " ldo=", m.ldo,
           " must be >= H*d=", m.H * m.d);
  LT_CHECK(m.ldk >= m.KVH * m.d && m.ldv >= m.KVH * m.d, "[", op, "] ldk=", m.ldk, " ldv=", m.ldv,
           " must be >= KVH*d=", m.KVH * m.d);
  check_decays(op, ctx, decay, m.H);
}

// The LASP-2 terms: the chunk's dims (T = C) with the same rules.
void check_terms(const char* op, const Context& ctx, const LinearAttentionDims& m, const float* decay) {
  LT_CHECK(m.B >= 0 && m.T >= 0, "[", op, "] B and T (the chunk length) must be >= 0, got B=", m.B, " T=", m.T);
  LT_CHECK(m.H >= 1 && m.KVH >= 1 && m.H % m.KVH == 0 && m.d >= 1, "[", op,
           "] need H, KVH, d >= 1 and H % KVH == 0, got H=", m.H, " KVH=", m.KVH, " d=", m.d);
  LT_CHECK(m.block >= 1, "[", op, "] block must be >= 1, got ", m.block);
  LT_CHECK(m.ldq >= m.H * m.d && m.ldo >= m.H * m.d && m.ldk >= m.KVH * m.d && m.ldv >= m.KVH * m.d, "[", op,
           "] row strides ldq=", m.ldq, " ldo=", m.ldo, " ldk=", m.ldk, " ldv=", m.ldv,
           " are below the head widths H*d=", m.H * m.d, ", KVH*d=", m.KVH * m.d);
  check_decays(op, ctx, decay, m.H);
}

bool empty(const LinearAttentionDims& m) { return m.B == 0 || m.T == 0; }

void check_merge(const char* op, const Context& ctx, int W, int j, int B, int H, int d, int C, const float* decay) {
  LT_CHECK(W >= 1 && j >= 0 && j < W, "[", op, "] rank j=", j, " outside [0, W=", W, ")");
  LT_CHECK(B >= 0 && H >= 1 && d >= 1 && C >= 0, "[", op, "] bad shape B=", B, " H=", H, " d=", d, " C=", C);
  LT_CHECK(decay != nullptr, "[", op, "] decay is null");
  if (!on_cpu(ctx)) return;
  for (int h = 0; h < H; ++h)
    LT_CHECK(decay[h] > 0.0f && decay[h] <= 1.0f, "[", op, "] decay[", h, "]=", decay[h], " must be in (0, 1]");
}

}  // namespace

// ---- softmax attention ----------------------------------------------------------

void softmax_attention_forward(const Context& ctx, const AttentionDims& a, float* o, int ldo, float* lse,
                               const float* q, int ldq, const float* k, int ldk, const float* v, int ldv) {
  const char* op = "softmax_attention_forward";
  check_softmax_dims(op, a, ldq, ldk, ldv, ldo);
  if (static_cast<long>(a.B) * a.Tq == 0) return;
  check_not_null(op, {o, lse, q, k, v});
  Arena& scratch = ctx.arena(op);
  if (on_cpu(ctx)) cpu::softmax_attention_forward(scratch, a, o, ldo, lse, q, ldq, k, ldk, v, ldv);
  else cuda::softmax_attention_forward(ctx.stream, scratch, a, o, ldo, lse, q, ldq, k, ldk, v, ldv);
}

size_t softmax_attention_forward_scratch_bytes(Device device, const AttentionDims& a) {
  return device == Device::CPU ? cpu::softmax_attention_forward_scratch_bytes(a)
                               : cuda::softmax_attention_forward_scratch_bytes(a);
}

void softmax_attention_backward(const Context& ctx, const AttentionDims& a, float* dq, int lddq, float* dk,
                                int lddk, float* dv, int lddv, const float* dout, int lddo, const float* q, int ldq,
                                const float* k, int ldk, const float* v, int ldv, const float* o, int ldo,
                                const float* lse) {
  const char* op = "softmax_attention_backward";
  check_softmax_dims(op, a, ldq, ldk, ldv, ldo);
  LT_CHECK(lddq >= a.H * a.d && lddo >= a.H * a.d, "[", op, "] dq/dout row strides (", lddq, ", ", lddo,
           ") must be >= H*d = ", a.H * a.d);
  LT_CHECK(lddk >= a.KVH * a.d && lddv >= a.KVH * a.d, "[", op, "] dk/dv row strides (", lddk, ", ", lddv,
           ") must be >= KVH*d = ", a.KVH * a.d);
  if (static_cast<long>(a.B) * a.Tk == 0) return;
  check_not_null(op, {dk, dv, k, v});
  if (a.Tq > 0) check_not_null(op, {dq, dout, q, o, lse});
  Arena& scratch = ctx.arena(op);
  if (on_cpu(ctx))
    cpu::softmax_attention_backward(scratch, a, dq, lddq, dk, lddk, dv, lddv, dout, lddo, q, ldq, k, ldk, v, ldv, o,
                                    ldo, lse);
  else
    cuda::softmax_attention_backward(ctx.stream, scratch, a, dq, lddq, dk, lddk, dv, lddv, dout, lddo, q, ldq, k,
                                     ldk, v, ldv, o, ldo, lse);
}

size_t softmax_attention_backward_scratch_bytes(Device device, const AttentionDims& a) {
  return device == Device::CPU ? cpu::softmax_attention_backward_scratch_bytes(a)
                               : cuda::softmax_attention_backward_scratch_bytes(a);
}

// ---- linear attention ---------------------------------------------------------------

void linear_attention_forward(const Context& ctx, float* o, const float* q, const float* k, const float* v,
                              const float* decay, const float* state_in, float* state_out,
                              const LinearAttentionDims& m) {
  const char* op = "linear_attention_forward";
  check_linear_dims(op, ctx, m, decay);
  if (m.B == 0) return;
  if (m.T > 0) check_not_null(op, {o, q, k, v});
  Arena& scratch = ctx.arena(op);
  if (const int chunks = linear_attention_chunk_count(ctx.device, m); chunks > 1)
    return linear_attention_forward_chunked(ctx, chunks, o, q, k, v, decay, state_in, state_out, m);
  if (on_cpu(ctx)) cpu::linear_attention_forward(scratch, o, q, k, v, decay, state_in, state_out, m);
  else cuda::linear_attention_forward(ctx.stream, scratch, o, q, k, v, decay, state_in, state_out, m);
}

size_t linear_attention_forward_scratch_bytes(Device device, const LinearAttentionDims& m) {
  if (const int chunks = linear_attention_chunk_count(device, m); chunks > 1)
    return linear_attention_chunked_scratch_bytes(device, m, chunks);
  return device == Device::CPU ? cpu::linear_attention_forward_scratch_bytes(m)
                               : cuda::linear_attention_forward_scratch_bytes(m);
}

void linear_attention_backward(const Context& ctx, float* dq, float* dk, float* dv, float* dstate_in,
                               const float* dout, const float* dstate_out, const float* q, const float* k,
                               const float* v, const float* decay, const float* state_in,
                               const LinearAttentionDims& m) {
  const char* op = "linear_attention_backward";
  check_linear_dims(op, ctx, m, decay);
  if (m.B == 0) return;
  if (m.T > 0) check_not_null(op, {dq, dk, dv, dout, q, k, v});
  Arena& scratch = ctx.arena(op);
  if (const int chunks = linear_attention_chunk_count(ctx.device, m); chunks > 1)
    return linear_attention_backward_chunked(ctx, chunks, dq, dk, dv, dstate_in, dout, dstate_out, q, k, v, decay,
                                             state_in, m);
  if (on_cpu(ctx))
    cpu::linear_attention_backward(scratch, dq, dk, dv, dstate_in, dout, dstate_out, q, k, v, decay, state_in, m);
  else
    cuda::linear_attention_backward(ctx.stream, scratch, dq, dk, dv, dstate_in, dout, dstate_out, q, k, v, decay,
                                    state_in, m);
}

size_t linear_attention_backward_scratch_bytes(Device device, const LinearAttentionDims& m) {
  if (const int chunks = linear_attention_chunk_count(device, m); chunks > 1)
    return linear_attention_chunked_scratch_bytes(device, m, chunks);
  return device == Device::CPU ? cpu::linear_attention_backward_scratch_bytes(m)
                               : cuda::linear_attention_backward_scratch_bytes(m);
}

// ---- LASP-2 chunk-boundary terms ------------------------------------------------------

void lasp2_chunk_state(const Context& ctx, float* M, const float* k, const float* v, const float* decay,
                       const LinearAttentionDims& m) {
  const char* op = "lasp2_chunk_state";
  check_terms(op, ctx, m, decay);
  if (m.B == 0) return;
  check_not_null(op, {M});
  if (m.T > 0) check_not_null(op, {k, v});
  Arena& scratch = ctx.arena(op);
  if (on_cpu(ctx)) cpu::lasp2_chunk_state(scratch, M, k, v, decay, m);
  else cuda::lasp2_chunk_state(ctx.stream, scratch, M, k, v, decay, m);
}

void lasp2_add_prefix_output(const Context& ctx, float* o, const float* q, const float* P, const float* decay,
                             const LinearAttentionDims& m) {
  const char* op = "lasp2_add_prefix_output";
  check_terms(op, ctx, m, decay);
  if (empty(m)) return;
  check_not_null(op, {o, q, P});
  Arena& scratch = ctx.arena(op);
  if (on_cpu(ctx)) cpu::lasp2_add_prefix_output(scratch, o, q, P, decay, m);
  else cuda::lasp2_add_prefix_output(ctx.stream, scratch, o, q, P, decay, m);
}

void lasp2_prefix_state_grad(const Context& ctx, float* dP, const float* q, const float* dout, const float* decay,
                             const LinearAttentionDims& m) {
  const char* op = "lasp2_prefix_state_grad";
  check_terms(op, ctx, m, decay);
  if (m.B == 0) return;
  check_not_null(op, {dP});
  if (m.T > 0) check_not_null(op, {q, dout});
  Arena& scratch = ctx.arena(op);
  if (on_cpu(ctx)) cpu::lasp2_prefix_state_grad(scratch, dP, q, dout, decay, m);
  else cuda::lasp2_prefix_state_grad(ctx.stream, scratch, dP, q, dout, decay, m);
}

void lasp2_add_prefix_dq(const Context& ctx, float* dq, const float* dout, const float* P, const float* decay,
                         const LinearAttentionDims& m) {
  const char* op = "lasp2_add_prefix_dq";
  check_terms(op, ctx, m, decay);
  if (empty(m)) return;
  check_not_null(op, {dq, dout, P});
  Arena& scratch = ctx.arena(op);
  if (on_cpu(ctx)) cpu::lasp2_add_prefix_dq(scratch, dq, dout, P, decay, m);
  else cuda::lasp2_add_prefix_dq(ctx.stream, scratch, dq, dout, P, decay, m);
}

void lasp2_add_suffix_dkdv(const Context& ctx, float* dk, float* dv, const float* k, const float* v,
                           const float* G, const float* decay, const LinearAttentionDims& m) {
  const char* op = "lasp2_add_suffix_dkdv";
  check_terms(op, ctx, m, decay);
  if (empty(m)) return;
  check_not_null(op, {dk, dv, k, v, G});
  Arena& scratch = ctx.arena(op);
  if (on_cpu(ctx)) cpu::lasp2_add_suffix_dkdv(scratch, dk, dv, k, v, G, decay, m);
  else cuda::lasp2_add_suffix_dkdv(ctx.stream, scratch, dk, dv, k, v, G, decay, m);
}

size_t lasp2_terms_scratch_bytes(Device device, const LinearAttentionDims& m) {
  return device == Device::CPU ? cpu::lasp2_terms_scratch_bytes(m) : cuda::lasp2_terms_scratch_bytes(m);
}

// ---- LASP-2 state merges ------------------------------------------------------------

namespace {
void merge_states(const char* op, bool suffix, const Context& ctx, float* out, const float* gathered, int W, int j,
                  int B, int H, int d, int C, const float* decay) {
  check_merge(op, ctx, W, j, B, H, d, C, decay);
  if (B == 0) return;
  check_not_null(op, {out, gathered});
  Arena& scratch = ctx.arena(op);
  if (on_cpu(ctx)) cpu::lasp2_merge_states(scratch, out, gathered, W, j, suffix, B, H, d, C, decay);
  else cuda::lasp2_merge_states(ctx.stream, scratch, out, gathered, W, j, suffix, B, H, d, C, decay);
}
}  // namespace

void lasp2_prefix_states(const Context& ctx, float* out, const float* gathered, int W, int j, int B, int H, int d,
                         int C, const float* decay) {
  merge_states("lasp2_prefix_states", false, ctx, out, gathered, W, j, B, H, d, C, decay);
}

void lasp2_suffix_states(const Context& ctx, float* out, const float* gathered, int W, int j, int B, int H, int d,
                         int C, const float* decay) {
  merge_states("lasp2_suffix_states", true, ctx, out, gathered, W, j, B, H, d, C, decay);
}

size_t lasp2_merge_states_scratch_bytes(Device device, int B, int H, int d) {
  return device == Device::CPU ? cpu::lasp2_merge_states_scratch_bytes(B, H, d)
                               : cuda::lasp2_merge_states_scratch_bytes(B, H, d);
}

}  // namespace lintrain
