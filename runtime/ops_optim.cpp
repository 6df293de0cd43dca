// Argument checks and device dispatch of the optimizer ops (runtime/ops.h,
// the section "Optimizer updates, the gradient norm and clipping").
#include <initializer_list>

#include "runtime/backend.h"
#include "runtime/error.h"
#include "runtime/ops.h"

namespace lintrain {

namespace {

// n >= 0 values, and every pointer set when there is at least one.
void check_elements(const char* op, int64_t n, std::initializer_list<const void*> pointers) {
  LT_CHECK(n >= 0, "[", op, "] needs n >= 0 values, got n = ", n);
  if (n == 0) return;
  int i = 0;
  for (const void* p : pointers) {
    LT_CHECK(p != nullptr, "[", op, "] argument ", i, " is null (n = ", n, ")");
    ++i;
  }
}

// A matrix (m, n) with r of its columns (IndexAxis::Columns) or rows chosen.
void check_indexed(const char* op, const float* out, const float* in, const float* idx, int64_t m, int64_t n,
                   int64_t r, IndexAxis axis) {
  const bool columns = axis == IndexAxis::Columns;
  LT_CHECK(m >= 0 && n >= 0 && r >= 0 && r <= (columns ? n : m), "[", op, "] needs m, n >= 0 and 0 <= r <= ",
           columns ? "n" : "m", " (", columns ? "columns" : "rows", "), got m = ", m, ", n = ", n, ", r = ", r);
  check_elements(op, m * n, {out, in});
  if (r > 0) LT_CHECK(idx != nullptr, "[", op, "] the index argument is null (r = ", r, ")");
}

bool on_cpu(const Context& ctx) { return ctx.device == Device::CPU; }

}  // namespace

void adam_update(const Context& ctx, float* out, float* m, float* v, const float* g, int64_t n, const AdamStep& s,
                 AdamTarget target) {
  check_elements("adam_update", n, {out, m, v, g});
  if (on_cpu(ctx)) cpu::adam_update(out, m, v, g, n, s, target);
  else cuda::adam_update(ctx.stream, out, m, v, g, n, s, target);
}

void lion_update(const Context& ctx, float* p, float* m, const float* g, int64_t n, const LionStep& s) {
  check_elements("lion_update", n, {p, m, g});
  if (on_cpu(ctx)) cpu::lion_update(p, m, g, n, s);
  else cuda::lion_update(ctx.stream, p, m, g, n, s);
}

void spam_update(const Context& ctx, float* p, float* m, float* v, const float* g, int64_t n, const SpamStep& s) {
  check_elements("spam_update", n, {p, m, v, g});
  if (on_cpu(ctx)) cpu::spam_update(p, m, v, g, n, s);
  else cuda::spam_update(ctx.stream, p, m, v, g, n, s);
}

SpamMaskCount spam_mask_offsets(const Context& ctx, int64_t* chunk_start, const float* mask, int64_t words,
                                int64_t numel) {
  LT_CHECK(numel >= 0 && words == (numel + kSpamMaskBits - 1) / kSpamMaskBits, "[spam_mask_offsets] a mask of ",
           numel, " entries has ", (numel + kSpamMaskBits - 1) / kSpamMaskBits, " words of ", kSpamMaskBits,
           " bits, got words = ", words);
  LT_CHECK(chunk_start != nullptr, "[spam_mask_offsets] chunk_start is null (words = ", words, ")");
  check_elements("spam_mask_offsets", words, {mask});
  if (on_cpu(ctx)) return cpu::spam_mask_offsets(chunk_start, mask, words, numel);
  return cuda::spam_mask_offsets(ctx.stream, chunk_start, mask, words, numel);
}

void spam_sparse_update(const Context& ctx, float* p, float* m, float* v, const float* g, const float* mask,
                        int64_t words, const int64_t* chunk_start, const SpamStep& s) {
  check_elements("spam_sparse_update", words, {p, m, v, g, mask, chunk_start});
  if (on_cpu(ctx)) cpu::spam_sparse_update(p, m, v, g, mask, words, chunk_start, s);
  else cuda::spam_sparse_update(ctx.stream, p, m, v, g, mask, words, chunk_start, s);
}

void sgd_update(const Context& ctx, float* p, const float* d, int64_t n, float decay, float lr, SgdDirection dir) {
  check_elements("sgd_update", n, {p, d});
  if (on_cpu(ctx)) cpu::sgd_update(p, d, n, decay, lr, dir);
  else cuda::sgd_update(ctx.stream, p, d, n, decay, lr, dir);
}

void scale(const Context& ctx, float* x, int64_t n, float s) {
  check_elements("scale", n, {x});
  if (on_cpu(ctx)) cpu::scale(x, n, s);
  else cuda::scale(ctx.stream, x, n, s);
}

void subtract(const Context& ctx, float* out, const float* a, const float* b, int64_t n) {
  check_elements("subtract", n, {out, a, b});
  if (on_cpu(ctx)) cpu::subtract(out, a, b, n);
  else cuda::subtract(ctx.stream, out, a, b, n);
}

void index_gather(const Context& ctx, float* out, const float* in, const float* idx, int64_t m, int64_t n, int64_t r,
                  IndexAxis axis) {
  check_indexed("index_gather", out, in, idx, m, n, r, axis);
  if (on_cpu(ctx)) cpu::index_gather(out, in, idx, m, n, r, axis);
  else cuda::index_gather(ctx.stream, out, in, idx, m, n, r, axis);
}

void index_scatter(const Context& ctx, float* out, const float* in, const float* idx, int64_t m, int64_t n,
                   int64_t r, IndexAxis axis) {
  check_indexed("index_scatter", out, in, idx, m, n, r, axis);
  if (on_cpu(ctx)) cpu::index_scatter(out, in, idx, m, n, r, axis);
  else cuda::index_scatter(ctx.stream, out, in, idx, m, n, r, axis);
}

double grad_norm_squared(const Context& ctx, const float* g, int64_t n) {
  check_elements("grad_norm_squared", n, {g});
  if (n == 0) return 0.0;
  Arena& scratch = ctx.arena("grad_norm_squared");
  if (on_cpu(ctx)) return cpu::grad_norm_squared(scratch, g, n);
  return cuda::grad_norm_squared(ctx.stream, scratch, g, n);
}

size_t grad_norm_squared_scratch_bytes(Device device, int64_t n) {
  return device == Device::CPU ? cpu::grad_norm_squared_scratch_bytes(n) : cuda::grad_norm_squared_scratch_bytes(n);
}

}  // namespace lintrain
