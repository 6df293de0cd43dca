// The CUDA bodies of runtime/ops.h in a build without CUDA: each throws,
// naming the op, so a run with run.device: cuda fails clearly at its first op
// (the trainer refuses it earlier, at start).
#include "runtime/backend.h"
#include "runtime/error.h"

namespace lintrain::cuda {

namespace {
[[noreturn]] void no_cuda(const char* op) {
  throw Error(str_cat("[", op, "] has no CUDA implementation (built without CUDA)"));
}
}  // namespace

void rmsnorm_forward(void*, float*, float*, const float*, const float*, int, int, float) {
  no_cuda("rmsnorm_forward");
}
void rmsnorm_backward(void*, Arena&, float*, float*, const float*, const float*, const float*, const float*, int,
                      int) {
  no_cuda("rmsnorm_backward");
}
size_t rmsnorm_backward_scratch_bytes(int, int) { no_cuda("rmsnorm_backward"); }
void swiglu_forward(void*, float*, const float*, int, int) { no_cuda("swiglu_forward"); }
void swiglu_backward(void*, float*, const float*, const float*, int, int) { no_cuda("swiglu_backward"); }
void copy_floats(void*, float*, const float*, int64_t) { no_cuda("copy_floats"); }
void zero_floats(void*, float*, int64_t) { no_cuda("zero_floats"); }
void copy_rows(void*, float*, int64_t, const float*, int64_t, int64_t, int64_t) { no_cuda("copy_rows"); }
void linear_attention_features_forward(void*, float*, float*, const float*, const LinearAttentionLayout&) {
  no_cuda("linear_attention_features_forward");
}
void linear_attention_features_backward(void*, float*, const float*, const float*, const LinearAttentionLayout&) {
  no_cuda("linear_attention_features_backward");
}
void linear_attention_output_forward(void*, float*, float*, float*, float*, const float*,
                                     const LinearAttentionLayout&) {
  no_cuda("linear_attention_output_forward");
}
void linear_attention_output_backward(void*, float*, float*, const float*, const float*, const float*, const float*,
                                      const LinearAttentionLayout&) {
  no_cuda("linear_attention_output_backward");
}
void matmul(void*, bool, bool, int, int, int, float, const float*, int, const float*, int, float, float*, int) {
  no_cuda("matmul");
}
void matmul_bf16(void*, Arena&, bool, bool, int, int, int, float, const float*, int, const float*, int, float, float*,
                 int) {
  no_cuda("matmul_bf16");
}
size_t matmul_bf16_scratch_bytes(int, int, int) { return 0; }
void round_to_bf16(void*, float*, const float*, int64_t) { no_cuda("round_to_bf16"); }
void rope_rotate(void*, float*, int, int, int, int, int, const float*, const float*, float sign) {
  no_cuda(sign > 0 ? "rope_forward" : "rope_backward");
}
void cross_entropy_rows(void*, float*, double*, int32_t*, const int32_t*, int, int, float, bool) {
  no_cuda("cross_entropy_rows");
}
void embedding_forward(void*, float*, const int32_t*, const float*, int, int) { no_cuda("embedding_forward"); }
void embedding_backward(void*, float*, const float*, const int32_t*, int, int) { no_cuda("embedding_backward"); }

}  // namespace lintrain::cuda
