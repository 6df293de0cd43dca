// Argument checks and device dispatch of the gated-linear-attention ops
// (runtime/ops_gla.h). The bodies assume what is checked here. Only the CPU
// has bodies: any other device gets an Error naming the op.
#include "runtime/ops_gla.h"

#include <cmath>

#include "runtime/backend.h"
#include "runtime/error.h"

namespace lintrain {

namespace {

void require_cpu(const char* op, const Context& ctx) {
  LT_CHECK(ctx.device == Device::CPU, "[", op, "] gated linear attention has no ", device_name(ctx.device),
           " implementation yet; run variant gla with run.device: cpu");
}

void check_not_null(const char* op, std::initializer_list<const void*> pointers) {
  int i = 0;
  for (const void* p : pointers) {
    LT_CHECK(p != nullptr, "[", op, "] pointer argument ", i, " is null");
    ++i;
  }
}

void check_dims(const char* op, const LinearAttentionDims& m) {
  LT_CHECK(m.B >= 0 && m.T >= 0, "[", op, "] B and T must be >= 0, got B=", m.B, " T=", m.T);
  LT_CHECK(m.H >= 1 && m.KVH >= 1 && m.H % m.KVH == 0, "[", op,
           "] need H >= 1, KVH >= 1 and H % KVH == 0, got H=", m.H, " KVH=", m.KVH);
  LT_CHECK(m.d >= 1, "[", op, "] head dim d must be >= 1, got ", m.d);
  LT_CHECK(m.block >= 1, "[", op, "] block must be >= 1, got ", m.block);
  LT_CHECK(m.ldq >= m.H * m.d && m.ldo >= m.H * m.d && m.ldg >= m.H * m.d, "[", op, "] ldq=", m.ldq, " ldo=", m.ldo,
           " ldg=", m.ldg, " must be >= H*d=", m.H * m.d);
  LT_CHECK(m.ldk >= m.KVH * m.d && m.ldv >= m.KVH * m.d, "[", op, "] ldk=", m.ldk, " ldv=", m.ldv,
           " must be >= KVH*d=", m.KVH * m.d);
}

// Every log gate finite and <= 0 (a gate in (0, 1]): a positive one would
// grow the state without bound and break the ops' no-overflow argument.
void check_log_gates(const char* op, const float* g, const LinearAttentionDims& m) {
  const int64_t N = static_cast<int64_t>(m.B) * m.T, Hd = static_cast<int64_t>(m.H) * m.d;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < Hd; ++c) {
      const float x = g[n * m.ldg + c];
      LT_CHECK(std::isfinite(x) && x <= 0.0f, "[", op, "] log gate ", x, " at token ", n, ", column ", c,
               " must be finite and <= 0 (a gate in (0, 1])");
    }
}

bool empty(const LinearAttentionDims& m) { return m.B == 0 || m.T == 0; }

void check_fold(const char* op, int W, int j, int j_min, int B, int H, int d) {
  LT_CHECK(W >= 1 && j >= j_min && j < W, "[", op, "] chunk j=", j, " outside [", j_min, ", W=", W, ")");
  LT_CHECK(B >= 0 && H >= 1 && d >= 1, "[", op, "] bad shape B=", B, " H=", H, " d=", d);
}

}  // namespace

void gla_forward(const Context& ctx, float* o, const float* q, const float* k, const float* v, const float* log_gate,
                 const float* state_in, float* state_out, const LinearAttentionDims& m) {
  require_cpu("gla_forward", ctx);
  check_dims("gla_forward", m);
  if (empty(m)) return;
  check_not_null("gla_forward", {o, q, k, v, log_gate});
  check_log_gates("gla_forward", log_gate, m);
  cpu::gla_forward(ctx.arena("gla_forward"), o, q, k, v, log_gate, state_in, state_out, m);
}

size_t gla_forward_scratch_bytes(Device device, const LinearAttentionDims& m) {
  return device == Device::CPU ? cpu::gla_forward_scratch_bytes(m) : 0;
}

void gla_backward(const Context& ctx, float* dq, float* dk, float* dv, float* dlog_gate, float* dstate_in,
                  const float* dout, const float* dstate_out, const float* q, const float* k, const float* v,
                  const float* log_gate, const float* state_in, const LinearAttentionDims& m) {
  require_cpu("gla_backward", ctx);
  check_dims("gla_backward", m);
  if (empty(m)) return;
  check_not_null("gla_backward", {dq, dk, dv, dlog_gate, dout, q, k, v, log_gate});
  check_log_gates("gla_backward", log_gate, m);
  cpu::gla_backward(ctx.arena("gla_backward"), dq, dk, dv, dlog_gate, dstate_in, dout, dstate_out, q, k, v, log_gate,
                    state_in, m);
}

size_t gla_backward_scratch_bytes(Device device, const LinearAttentionDims& m) {
  return device == Device::CPU ? cpu::gla_backward_scratch_bytes(m) : 0;
}

void gla_chunk_state(const Context& ctx, float* M, float* log_decay, const float* k, const float* v,
                     const float* log_gate, const LinearAttentionDims& m) {
  require_cpu("gla_chunk_state", ctx);
  check_dims("gla_chunk_state", m);
  check_not_null("gla_chunk_state", {M, log_decay});
  if (m.T > 0) check_not_null("gla_chunk_state", {k, v, log_gate});
  if (m.T > 0) check_log_gates("gla_chunk_state", log_gate, m);
  cpu::gla_chunk_state(ctx.arena("gla_chunk_state"), M, log_decay, k, v, log_gate, m);
}

void gla_add_prefix_output(const Context& ctx, float* o, const float* q, const float* log_gate, const float* P,
                           const LinearAttentionDims& m) {
  require_cpu("gla_add_prefix_output", ctx);
  check_dims("gla_add_prefix_output", m);
  if (empty(m)) return;
  check_not_null("gla_add_prefix_output", {o, q, log_gate, P});
  cpu::gla_add_prefix_output(ctx.arena("gla_add_prefix_output"), o, q, log_gate, P, m);
}

void gla_prefix_state_grad(const Context& ctx, float* dP, const float* q, const float* log_gate, const float* dout,
                           const LinearAttentionDims& m) {
  require_cpu("gla_prefix_state_grad", ctx);
  check_dims("gla_prefix_state_grad", m);
  check_not_null("gla_prefix_state_grad", {dP});
  if (m.T > 0) check_not_null("gla_prefix_state_grad", {q, log_gate, dout});
  cpu::gla_prefix_state_grad(ctx.arena("gla_prefix_state_grad"), dP, q, log_gate, dout, m);
}

void gla_add_suffix_grads(const Context& ctx, float* dk, float* dv, float* dlog_gate, const float* k, const float* v,
                          const float* log_gate, const float* G, const float* S_out, const LinearAttentionDims& m) {
  require_cpu("gla_add_suffix_grads", ctx);
  check_dims("gla_add_suffix_grads", m);
  if (empty(m)) return;
  check_not_null("gla_add_suffix_grads", {dk, dv, dlog_gate, k, v, log_gate, G, S_out});
  cpu::gla_add_suffix_grads(ctx.arena("gla_add_suffix_grads"), dk, dv, dlog_gate, k, v, log_gate, G, S_out, m);
}

size_t gla_terms_scratch_bytes(Device device, const LinearAttentionDims& m) {
  return device == Device::CPU ? cpu::gla_terms_scratch_bytes(m) : 0;
}

void gla_prefix_fold(const Context& ctx, float* P, float* S_out, const float* gathered, const float* S0, int W,
                     int j, int B, int H, int d) {
  require_cpu("gla_prefix_fold", ctx);
  check_fold("gla_prefix_fold", W, j, 0, B, H, d);
  check_not_null("gla_prefix_fold", {gathered});
  LT_CHECK(P != nullptr || S_out != nullptr, "[gla_prefix_fold] neither P nor S_out is wanted");
  cpu::gla_prefix_fold(P, S_out, gathered, S0, j, B, H, d);
}

void gla_suffix_fold(const Context& ctx, float* G, const float* gathered_dP, const float* gathered,
                     const float* G_end, int W, int j, int B, int H, int d) {
  require_cpu("gla_suffix_fold", ctx);
  check_fold("gla_suffix_fold", W, j, -1, B, H, d);
  check_not_null("gla_suffix_fold", {G, gathered_dP, gathered});
  cpu::gla_suffix_fold(G, gathered_dP, gathered, G_end, W, j, B, H, d);
}

void gla_gate_forward(const Context& ctx, float* log_gate, const float* u, const float* bias, int64_t N, int Hd,
                      float tau) {
  require_cpu("gla_gate_forward", ctx);
  LT_CHECK(N >= 0 && Hd >= 1, "[gla_gate_forward] bad shape N=", N, " Hd=", Hd);
  LT_CHECK(tau > 0.0f && std::isfinite(tau), "[gla_gate_forward] tau=", tau, " must be > 0");
  if (N == 0) return;
  check_not_null("gla_gate_forward", {log_gate, u, bias});
  cpu::gla_gate_forward(log_gate, u, bias, N, Hd, tau);
}

void gla_gate_backward(const Context& ctx, float* du, float* dbias, const float* dlog_gate, const float* log_gate,
                       int64_t N, int Hd, float tau) {
  require_cpu("gla_gate_backward", ctx);
  LT_CHECK(N >= 0 && Hd >= 1, "[gla_gate_backward] bad shape N=", N, " Hd=", Hd);
  LT_CHECK(tau > 0.0f && std::isfinite(tau), "[gla_gate_backward] tau=", tau, " must be > 0");
  if (N == 0) return;
  check_not_null("gla_gate_backward", {du, dbias, dlog_gate, log_gate});
  cpu::gla_gate_backward(du, dbias, dlog_gate, log_gate, N, Hd, tau);
}

}  // namespace lintrain
