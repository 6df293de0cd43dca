// The one place where op arguments are checked and the device's body chosen.
#include "runtime/ops.h"

#include <algorithm>
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

void copy_floats(const Context& ctx, float* dst, const float* src, int64_t n) {
  LT_CHECK(n >= 0, "[copy_floats] negative length ", n);
  if (n == 0) return;
  LT_CHECK(dst != nullptr && src != nullptr, "[copy_floats] a null buffer (n = ", n, ")");
  LT_CHECK(dst + n <= src || src + n <= dst || dst == src, "[copy_floats] the ranges overlap (n = ", n, ")");
  if (on_cpu(ctx)) cpu::copy_floats(dst, src, n);
  else cuda::copy_floats(ctx.stream, dst, src, n);
}

void zero_floats(const Context& ctx, float* dst, int64_t n) {
  LT_CHECK(n >= 0, "[zero_floats] negative length ", n);
  if (n == 0) return;
  LT_CHECK(dst != nullptr, "[zero_floats] a null buffer (n = ", n, ")");
  if (on_cpu(ctx)) cpu::zero_floats(dst, n);
  else cuda::zero_floats(ctx.stream, dst, n);
}

void copy_rows(const Context& ctx, float* dst, int64_t ldd, const float* src, int64_t lds, int64_t rows,
               int64_t cols) {
  LT_CHECK(rows >= 0 && cols >= 0 && ldd >= cols && lds >= cols, "[copy_rows] rows = ", rows, ", cols = ", cols,
           " with row strides ", ldd, " (dst) and ", lds, " (src): strides must be >= cols");
  if (rows == 0 || cols == 0) return;
  LT_CHECK(dst != nullptr && src != nullptr, "[copy_rows] a null buffer (", rows, " x ", cols, ")");
  if (on_cpu(ctx)) cpu::copy_rows(dst, ldd, src, lds, rows, cols);
  else cuda::copy_rows(ctx.stream, dst, ldd, src, lds, rows, cols);
}

namespace {
// The checks of matmul and matmul_bf16; false when there is nothing to do.
bool check_matmul(const char* op, bool trans_a, bool trans_b, int M, int N, int K, const float* A, int lda,
                  const float* B, int ldb, const float* C, int ldc) {
  LT_CHECK(M >= 0 && N >= 0 && K >= 0, "[", op, "] negative size M = ", M, ", N = ", N, ", K = ", K);
  if (M == 0 || N == 0) return false;
  // Row strides of the stored matrices: A is (M, K) or, transposed, (K, M).
  const int a_cols = trans_a ? M : K, b_cols = trans_b ? K : N;
  LT_CHECK(lda >= std::max(1, a_cols) && ldb >= std::max(1, b_cols) && ldc >= N, "[", op, "] row strides lda = ",
           lda, ", ldb = ", ldb, ", ldc = ", ldc, " are below the widths ", a_cols, ", ", b_cols, ", ", N,
           " (M = ", M, ", N = ", N, ", K = ", K, ", trans_a = ", trans_a, ", trans_b = ", trans_b, ")");
  LT_CHECK(C != nullptr && (K == 0 || (A != nullptr && B != nullptr)), "[", op, "] a null matrix (M = ", M,
           ", N = ", N, ", K = ", K, ")");
  return true;
}
}  // namespace

void matmul(const Context& ctx, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A,
            int lda, const float* B, int ldb, float beta, float* C, int ldc) {
  if (!check_matmul("matmul", trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc)) return;
  if (on_cpu(ctx)) cpu::matmul(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  else cuda::matmul(ctx.stream, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void matmul_bf16(const Context& ctx, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A,
                 int lda, const float* B, int ldb, float beta, float* C, int ldc) {
  if (!check_matmul("matmul_bf16", trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc)) return;
  // bf16 values in f32: the FP32 GEMM computes exact products and FP32 sums.
  if (on_cpu(ctx)) cpu::matmul(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  else cuda::matmul_bf16(ctx.stream, ctx.arena("matmul_bf16"), trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb,
                         beta, C, ldc);
}

size_t matmul_bf16_scratch_bytes(Device device, int M, int N, int K) {
  return device == Device::CPU ? 0 : cuda::matmul_bf16_scratch_bytes(M, N, K);
}

void round_to_bf16(const Context& ctx, float* out, const float* in, int64_t n) {
  LT_CHECK(n >= 0, "[round_to_bf16] negative length ", n);
  if (n == 0) return;
  LT_CHECK(out != nullptr && in != nullptr, "[round_to_bf16] a null buffer (n = ", n, ")");
  if (on_cpu(ctx)) cpu::round_to_bf16(out, in, n);
  else cuda::round_to_bf16(ctx.stream, out, in, n);
}

namespace {
void rope_rotate(const char* op, const Context& ctx, float* x, int ldx, int B, int T, int heads, int pos_offset,
                 const RopeTable& table, float sign) {
  const int d = table.head_dim();
  LT_CHECK(d > 0, "[", op, "] the RopeTable is empty (default-constructed)");
  LT_CHECK(B >= 0 && T >= 0 && heads > 0, "[", op, "] bad shape B = ", B, ", T = ", T, ", heads = ", heads);
  LT_CHECK(ldx >= heads * d, "[", op, "] row stride ", ldx, " is smaller than heads * head_dim = ", heads, " * ",
           d);
  LT_CHECK(table.covers(pos_offset, T), "[", op, "] positions [", pos_offset, ", ", pos_offset + T,
           ") are outside the table's [", table.first_pos(), ", ", table.first_pos() + table.num_pos(),
           "); build the RopeTable for these positions");
  LT_CHECK(table.device() == ctx.device, "[", op, "] the RopeTable is on ", device_name(table.device()),
           " but the op runs on ", device_name(ctx.device));
  if (B == 0 || T == 0) return;
  LT_CHECK(x != nullptr, "[", op, "] x is null");
  const float *cos = table.cos_at(pos_offset), *sin = table.sin_at(pos_offset);
  if (on_cpu(ctx)) cpu::rope_rotate(x, ldx, B, T, heads, d, cos, sin, sign);
  else cuda::rope_rotate(ctx.stream, x, ldx, B, T, heads, d, cos, sin, sign);
}
}  // namespace

void rope_forward(const Context& ctx, float* x, int ldx, int B, int T, int heads, int pos_offset,
                  const RopeTable& table) {
  rope_rotate("rope_forward", ctx, x, ldx, B, T, heads, pos_offset, table, 1.0f);
}

void rope_backward(const Context& ctx, float* dx, int lddx, int B, int T, int heads, int pos_offset,
                   const RopeTable& table) {
  rope_rotate("rope_backward", ctx, dx, lddx, B, T, heads, pos_offset, table, -1.0f);
}

void cross_entropy_rows(const Context& ctx, float* logits, double* row_loss, int32_t* row_correct,
                        const int32_t* targets, int rows, int V, float grad_scale, bool want_grad) {
  check_rows("cross_entropy_rows", rows, V, {logits, row_loss, row_correct, targets});
  if (on_cpu(ctx)) {
    for (int r = 0; r < rows; ++r)
      LT_CHECK(targets[r] >= -1 && targets[r] < V, "[cross_entropy] target ", targets[r], " at row ", r,
               " is outside [0, ", V, ") (and not -1 = ignore)");
    cpu::cross_entropy_rows(logits, row_loss, row_correct, targets, rows, V, grad_scale, want_grad);
  } else {  // callers check the host copy of the targets before uploading them
    cuda::cross_entropy_rows(ctx.stream, logits, row_loss, row_correct, targets, rows, V, grad_scale, want_grad);
  }
}

namespace {
void check_layout(const char* op, const LinearAttentionLayout& l) {
  LT_CHECK(l.N >= 0 && l.H > 0 && l.d > 0 && l.Hd == l.H * l.d && l.QK > l.Hd && l.W > l.QK &&
               (l.QK - l.Hd) % l.d == 0 && l.W - l.QK == l.QK - l.Hd,
           "[", op, "] inconsistent layout N = ", l.N, ", W = ", l.W, ", QK = ", l.QK, ", Hd = ", l.Hd, ", H = ", l.H,
           ", d = ", l.d, " (want Hd = H d, QK = Hd + KVH d, W = QK + KVH d)");
  LT_CHECK(std::isfinite(l.key_scale) && l.key_scale != 0.0f, "[", op, "] key_scale = ", l.key_scale,
           " must be finite and non-zero");
}
}  // namespace

void linear_attention_features_forward(const Context& ctx, float* feat, float* pre, const float* qkv,
                                       const LinearAttentionLayout& l) {
  check_layout("linear_attention_features_forward", l);
  if (l.N == 0) return;
  LT_CHECK(feat && qkv, "[linear_attention_features_forward] feat or qkv is null");
  LT_CHECK(pre || l.feature_map != FeatureMap::silu,
           "[linear_attention_features_forward] the silu feature map needs `pre` (its derivative needs x)");
  if (on_cpu(ctx)) cpu::linear_attention_features_forward(feat, pre, qkv, l);
  else cuda::linear_attention_features_forward(ctx.stream, feat, pre, qkv, l);
}

void linear_attention_features_backward(const Context& ctx, float* dqkv, const float* feat, const float* pre,
                                        const LinearAttentionLayout& l) {
  check_layout("linear_attention_features_backward", l);
  if (l.N == 0) return;
  LT_CHECK(dqkv && feat, "[linear_attention_features_backward] dqkv or feat is null");
  LT_CHECK(pre || l.feature_map != FeatureMap::silu,
           "[linear_attention_features_backward] the silu feature map needs `pre` (its derivative needs x)");
  if (on_cpu(ctx)) cpu::linear_attention_features_backward(dqkv, feat, pre, l);
  else cuda::linear_attention_features_backward(ctx.stream, dqkv, feat, pre, l);
}

void linear_attention_output_forward(const Context& ctx, float* out, float* y, float* rstd, float* g_saved,
                                     const float* g, const LinearAttentionLayout& l) {
  check_layout("linear_attention_output_forward", l);
  if (l.N == 0) return;
  LT_CHECK(out && y, "[linear_attention_output_forward] out or y is null");
  LT_CHECK(!g || g_saved, "[linear_attention_output_forward] a gate g needs g_saved");
  LT_CHECK(!rstd || (l.eps > 0 && std::isfinite(l.eps)), "[linear_attention_output_forward] eps = ", l.eps,
           " must be positive and finite");
  if (on_cpu(ctx)) cpu::linear_attention_output_forward(out, y, rstd, g_saved, g, l);
  else cuda::linear_attention_output_forward(ctx.stream, out, y, rstd, g_saved, g, l);
}

void linear_attention_output_backward(const Context& ctx, float* dy, float* dg, const float* dout, const float* y,
                                      const float* rstd, const float* g_saved, const LinearAttentionLayout& l) {
  check_layout("linear_attention_output_backward", l);
  if (l.N == 0) return;
  LT_CHECK(dy && dout && y, "[linear_attention_output_backward] dy, dout or y is null");
  LT_CHECK(!g_saved || dg, "[linear_attention_output_backward] the gate's gradient dg is null");
  if (on_cpu(ctx)) cpu::linear_attention_output_backward(dy, dg, dout, y, rstd, g_saved, l);
  else cuda::linear_attention_output_backward(ctx.stream, dy, dg, dout, y, rstd, g_saved, l);
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
