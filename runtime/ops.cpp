// The one place where op arguments are checked and the device's body chosen.
#include "runtime/ops.h"

#include <cmath>

#include "runtime/backend.h"
#include "runtime/error.h"

namespace lintrain {

Arena& Context::arena(const char* op) const {
  LT_CHECK(scratch != nullptr, "[", op, "] needs a scratch arena; the Context has none");
  LT_CHECK(scratch->device() == device, "[", op, "] the scratch arena is on ", device_name(scratch->device()),
           " but the op runs on ", device_name(device));
  return *scratch;
}

namespace {

// Rows and columns: N >= 0 rows of C > 0 columns, and every pointer set when
// there is at least one row.
void check_rows(const char* op, int N, int C, std::initializer_list<const void*> pointers) {
  LT_CHECK(N >= 0 && C > 0, "[", op, "] needs N >= 0 rows of C > 0 columns, got N = ", N, ", C = ", C);
  if (N == 0) return;
  int i = 0;
  for (const void* p : pointers) {
    LT_CHECK(p != nullptr, "[", op, "] argument ", i, " is null (N = ", N, ", C = ", C, ")");
    ++i;
  }
}

bool on_cpu(const Context& ctx) { return ctx.device == Device::CPU; }

}  // namespace

void rmsnorm_forward(const Context& ctx, float* out, float* rstd, const float* inp, const float* weight, int N,
                     int C, float eps) {
  check_rows("rmsnorm_forward", N, C, {out, rstd, inp});
  LT_CHECK(eps > 0 && std::isfinite(eps), "[rmsnorm_forward] eps = ", eps, " must be positive and finite");
  if (on_cpu(ctx)) cpu::rmsnorm_forward(out, rstd, inp, weight, N, C, eps);
  else cuda::rmsnorm_forward(ctx.stream, out, rstd, inp, weight, N, C, eps);
}

void rmsnorm_backward(const Context& ctx, float* dinp, float* dweight, const float* dout, const float* inp,
                      const float* weight, const float* rstd, int N, int C) {
  check_rows("rmsnorm_backward", N, C, {dinp, dout, inp, rstd});
  Arena& scratch = ctx.arena("rmsnorm_backward");
  if (on_cpu(ctx)) cpu::rmsnorm_backward(scratch, dinp, dweight, dout, inp, weight, rstd, N, C);
  else cuda::rmsnorm_backward(ctx.stream, scratch, dinp, dweight, dout, inp, weight, rstd, N, C);
}

size_t rmsnorm_backward_scratch_bytes(Device device, int N, int C) {
  return device == Device::CPU ? cpu::rmsnorm_backward_scratch_bytes(N, C)
                               : cuda::rmsnorm_backward_scratch_bytes(N, C);
}

void swiglu_forward(const Context& ctx, float* h, const float* gate_up, int N, int F) {
  check_rows("swiglu_forward", N, F, {h, gate_up});
  if (on_cpu(ctx)) cpu::swiglu_forward(h, gate_up, N, F);
  else cuda::swiglu_forward(ctx.stream, h, gate_up, N, F);
}

void swiglu_backward(const Context& ctx, float* dgate_up, const float* dh, const float* gate_up, int N, int F) {
  check_rows("swiglu_backward", N, F, {dgate_up, dh, gate_up});
  if (on_cpu(ctx)) cpu::swiglu_backward(dgate_up, dh, gate_up, N, F);
  else cuda::swiglu_backward(ctx.stream, dgate_up, dh, gate_up, N, F);
}

void check_token_ids(const int32_t* tokens, int N, int V) {
  for (int n = 0; n < N; ++n)
    LT_CHECK(tokens[n] >= 0 && tokens[n] < V, "[embedding] token id ", tokens[n], " at position ", n,
             " is outside the vocabulary [0, ", V, "); check model.vocab_size against the data");
}

void embedding_forward(const Context& ctx, float* out, const int32_t* tokens, const float* wte, int N, int C,
                       int V) {
  check_rows("embedding_forward", N, C, {out, tokens, wte});
  LT_CHECK(V > 0, "[embedding_forward] the vocabulary size V = ", V, " must be positive");
  if (on_cpu(ctx)) {
    check_token_ids(tokens, N, V);
    cpu::embedding_forward(out, tokens, wte, N, C);
  } else {
    cuda::embedding_forward(ctx.stream, out, tokens, wte, N, C);
  }
}

void embedding_backward(const Context& ctx, float* dwte, const float* dout, const int32_t* tokens, int N, int C) {
  check_rows("embedding_backward", N, C, {dwte, dout, tokens});
  if (on_cpu(ctx)) cpu::embedding_backward(dwte, dout, tokens, N, C);
  else cuda::embedding_backward(ctx.stream, dwte, dout, tokens, N, C);
}

}  // namespace lintrain
