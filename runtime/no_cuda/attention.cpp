// The CUDA bodies of the attention ops (runtime/ops.h) in a build without
// CUDA: each throws, naming the op.
#include "runtime/backend.h"
#include "runtime/error.h"

namespace lintrain::cuda {

namespace {
[[noreturn]] void no_cuda(const char* op) {
  throw Error(str_cat("[", op, "] has no CUDA implementation (built without CUDA)"));
}
}  // namespace

void softmax_attention_forward(void*, Arena&, const AttentionDims&, float*, int, float*, const float*, int,
                               const float*, int, const float*, int) {
  no_cuda("softmax_attention_forward");
}
size_t softmax_attention_forward_scratch_bytes(const AttentionDims&) { no_cuda("softmax_attention_forward"); }
void softmax_attention_backward(void*, Arena&, const AttentionDims&, float*, int, float*, int, float*, int,
                                const float*, int, const float*, int, const float*, int, const float*, int,
                                const float*, int, const float*) {
  no_cuda("softmax_attention_backward");
}
size_t softmax_attention_backward_scratch_bytes(const AttentionDims&) { no_cuda("softmax_attention_backward"); }
void linear_attention_forward(void*, Arena&, float*, const float*, const float*, const float*, const float*,
                              const float*, float*, const LinearAttentionDims&) {
  no_cuda("linear_attention_forward");
}
size_t linear_attention_forward_scratch_bytes(const LinearAttentionDims&) { no_cuda("linear_attention_forward"); }
void linear_attention_backward(void*, Arena&, float*, float*, float*, float*, const float*, const float*,
                               const float*, const float*, const float*, const float*, const float*,
                               const LinearAttentionDims&) {
  no_cuda("linear_attention_backward");
}
size_t linear_attention_backward_scratch_bytes(const LinearAttentionDims&) { no_cuda("linear_attention_backward"); }
void lasp2_chunk_state(void*, Arena&, float*, const float*, const float*, const float*, const LinearAttentionDims&) {
  no_cuda("lasp2_chunk_state");
}
void lasp2_add_prefix_output(void*, Arena&, float*, const float*, const float*, const float*,
                             const LinearAttentionDims&) {
  no_cuda("lasp2_add_prefix_output");
}
void lasp2_prefix_state_grad(void*, Arena&, float*, const float*, const float*, const float*,
                             const LinearAttentionDims&) {
  no_cuda("lasp2_prefix_state_grad");
}
void lasp2_add_prefix_dq(void*, Arena&, float*, const float*, const float*, const float*,
                         const LinearAttentionDims&) {
  no_cuda("lasp2_add_prefix_dq");
}
void lasp2_add_suffix_dkdv(void*, Arena&, float*, float*, const float*, const float*, const float*, const float*,
                           const LinearAttentionDims&) {
  no_cuda("lasp2_add_suffix_dkdv");
}
size_t lasp2_terms_scratch_bytes(const LinearAttentionDims&) { no_cuda("lasp2_terms"); }
void lasp2_merge_states(void*, Arena&, float*, const float*, int, int, bool suffix, int, int, int, int,
                        const float*) {
  no_cuda(suffix ? "lasp2_suffix_states" : "lasp2_prefix_states");
}
size_t lasp2_merge_states_scratch_bytes(int, int, int) { no_cuda("lasp2_merge_states"); }
void lasp2_scan_states(void*, float*, float*, const float*, const float*, int, int, int, int, int, bool) {
  no_cuda("lasp2_scan_states");
}

}  // namespace lintrain::cuda
