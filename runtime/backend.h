// The bodies behind runtime/ops.h, one namespace per device, with the same
// arguments as the op minus the checks (done once in runtime/ops.cpp). Only
// runtime/ops.cpp includes this: everything else calls the ops.
//   cpu::   runtime/cpu/<op>.cpp
//   cuda::  runtime/cuda/<op>.cu, or runtime/no_cuda/ops.cpp (throws)
#pragma once

#include <cstddef>
#include <cstdint>

#include "runtime/ops.h"

namespace lintrain {

class Arena;

namespace cpu {
void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int N, int C, float eps);
void rmsnorm_backward(Arena& scratch, float* dinp, float* dweight, const float* dout, const float* inp,
                      const float* weight, const float* rstd, int N, int C);
size_t rmsnorm_backward_scratch_bytes(int N, int C);
void swiglu_forward(float* h, const float* gate_up, int N, int F);
void swiglu_backward(float* dgate_up, const float* dh, const float* gate_up, int N, int F);
void copy_floats(float* dst, const float* src, int64_t n);
void linear_attention_features_forward(float* feat, float* pre, const float* qkv, const LinearAttentionLayout& l);
void linear_attention_features_backward(float* dqkv, const float* feat, const float* pre,
                                        const LinearAttentionLayout& l);
void linear_attention_output_forward(float* out, float* y, float* rstd, float* g_saved, const float* g,
                                     const LinearAttentionLayout& l);
void linear_attention_output_backward(float* dy, float* dg, const float* dout, const float* y, const float* rstd,
                                      const float* g_saved, const LinearAttentionLayout& l);
void zero_floats(float* dst, int64_t n);
void copy_rows(float* dst, int64_t ldd, const float* src, int64_t lds, int64_t rows, int64_t cols);
void matmul(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
            int ldb, float beta, float* C, int ldc);
void round_to_bf16(float* out, const float* in, int64_t n);
void rope_rotate(float* x, int ldx, int B, int T, int heads, int d, const float* cos, const float* sin, float sign);
void cross_entropy_rows(float* logits, double* row_loss, int32_t* row_correct, const int32_t* targets, int rows,
                        int V, float grad_scale, bool want_grad);
void embedding_forward(float* out, const int32_t* tokens, const float* wte, int N, int C);
void embedding_backward(float* dwte, const float* dout, const int32_t* tokens, int N, int C);
}  // namespace cpu

namespace cuda {
void rmsnorm_forward(void* stream, float* out, float* rstd, const float* inp, const float* weight, int N, int C,
                     float eps);
void rmsnorm_backward(void* stream, Arena& scratch, float* dinp, float* dweight, const float* dout,
                      const float* inp, const float* weight, const float* rstd, int N, int C);
size_t rmsnorm_backward_scratch_bytes(int N, int C);
void swiglu_forward(void* stream, float* h, const float* gate_up, int N, int F);
void swiglu_backward(void* stream, float* dgate_up, const float* dh, const float* gate_up, int N, int F);
void copy_floats(void* stream, float* dst, const float* src, int64_t n);
void linear_attention_features_forward(void* stream, float* feat, float* pre, const float* qkv,
                                       const LinearAttentionLayout& l);
void linear_attention_features_backward(void* stream, float* dqkv, const float* feat, const float* pre,
                                        const LinearAttentionLayout& l);
void linear_attention_output_forward(void* stream, float* out, float* y, float* rstd, float* g_saved,
                                     const float* g, const LinearAttentionLayout& l);
void linear_attention_output_backward(void* stream, float* dy, float* dg, const float* dout, const float* y,
                                      const float* rstd, const float* g_saved, const LinearAttentionLayout& l);
void zero_floats(void* stream, float* dst, int64_t n);
void copy_rows(void* stream, float* dst, int64_t ldd, const float* src, int64_t lds, int64_t rows,
               int64_t cols);
void matmul(void* stream, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda,
            const float* B, int ldb, float beta, float* C, int ldc);
void matmul_bf16(void* stream, Arena& scratch, bool trans_a, bool trans_b, int M, int N, int K, float alpha,
                 const float* A, int lda, const float* B, int ldb, float beta, float* C, int ldc);
size_t matmul_bf16_scratch_bytes(int M, int N, int K);
void round_to_bf16(void* stream, float* out, const float* in, int64_t n);
void rope_rotate(void* stream, float* x, int ldx, int B, int T, int heads, int d, const float* cos,
                 const float* sin, float sign);
void cross_entropy_rows(void* stream, float* logits, double* row_loss, int32_t* row_correct,
                        const int32_t* targets, int rows, int V, float grad_scale, bool want_grad);
void embedding_forward(void* stream, float* out, const int32_t* tokens, const float* wte, int N, int C);
void embedding_backward(void* stream, float* dwte, const float* dout, const int32_t* tokens, int N, int C);
}  // namespace cuda

}  // namespace lintrain

// ---- attention cores, LASP-2 terms and merges (runtime/ops_attention.cpp) ----
// cpu:: in runtime/cpu/{softmax_attention,linear_attention,lasp2_terms}.cpp,
// cuda:: in runtime/cuda/<same>.cu or runtime/no_cuda/attention.cpp.
#include "runtime/ops.h"  // AttentionDims, LinearAttentionDims

namespace lintrain {

namespace cpu {
void softmax_attention_forward(Arena& scratch, const AttentionDims& dims, float* o, int ldo, float* lse,
                               const float* q, int ldq, const float* k, int ldk, const float* v, int ldv);
size_t softmax_attention_forward_scratch_bytes(const AttentionDims& dims);
void softmax_attention_backward(Arena& scratch, const AttentionDims& dims, float* dq, int lddq, float* dk, int lddk,
                                float* dv, int lddv, const float* dout, int lddo, const float* q, int ldq,
                                const float* k, int ldk, const float* v, int ldv, const float* o, int ldo,
                                const float* lse);
size_t softmax_attention_backward_scratch_bytes(const AttentionDims& dims);
void linear_attention_forward(Arena& scratch, float* o, const float* q, const float* k, const float* v,
                              const float* decay, const float* state_in, float* state_out,
                              const LinearAttentionDims& dims);
size_t linear_attention_forward_scratch_bytes(const LinearAttentionDims& dims);
void linear_attention_backward(Arena& scratch, float* dq, float* dk, float* dv, float* dstate_in, const float* dout,
                               const float* dstate_out, const float* q, const float* k, const float* v,
                               const float* decay, const float* state_in, const LinearAttentionDims& dims);
size_t linear_attention_backward_scratch_bytes(const LinearAttentionDims& dims);
void lasp2_chunk_state(Arena& scratch, float* M, const float* k, const float* v, const float* decay,
                       const LinearAttentionDims& dims);
void lasp2_add_prefix_output(Arena& scratch, float* o, const float* q, const float* P, const float* decay,
                             const LinearAttentionDims& dims);
void lasp2_prefix_state_grad(Arena& scratch, float* dP, const float* q, const float* dout, const float* decay,
                             const LinearAttentionDims& dims);
void lasp2_add_prefix_dq(Arena& scratch, float* dq, const float* dout, const float* P, const float* decay,
                         const LinearAttentionDims& dims);
void lasp2_add_suffix_dkdv(Arena& scratch, float* dk, float* dv, const float* k, const float* v, const float* G,
                           const float* decay, const LinearAttentionDims& dims);
size_t lasp2_terms_scratch_bytes(const LinearAttentionDims& dims);
// out = sum over u in [u0, u1) of lambda_h^(C n(u)) gathered[u], n(u) = j-1-u
// (prefix) or u-1-j (suffix), in double, u increasing.
void lasp2_merge_states(Arena& scratch, float* out, const float* gathered, int W, int j, bool suffix, int B, int H,
                        int d, int C, const float* decay);
size_t lasp2_merge_states_scratch_bytes(int B, int H, int d);
void lasp2_scan_states(float* states, float* last, const float* first, const float* decay, int B, int n, int H, int d,
                       int L, bool reverse);
}  // namespace cpu

namespace cuda {
void softmax_attention_forward(void* stream, Arena& scratch, const AttentionDims& dims, float* o, int ldo,
                               float* lse, const float* q, int ldq, const float* k, int ldk, const float* v,
                               int ldv);
size_t softmax_attention_forward_scratch_bytes(const AttentionDims& dims);
void softmax_attention_backward(void* stream, Arena& scratch, const AttentionDims& dims, float* dq, int lddq,
                                float* dk, int lddk, float* dv, int lddv, const float* dout, int lddo,
                                const float* q, int ldq, const float* k, int ldk, const float* v, int ldv,
                                const float* o, int ldo, const float* lse);
size_t softmax_attention_backward_scratch_bytes(const AttentionDims& dims);
void linear_attention_forward(void* stream, Arena& scratch, float* o, const float* q, const float* k,
                              const float* v, const float* decay, const float* state_in, float* state_out,
                              const LinearAttentionDims& dims);
size_t linear_attention_forward_scratch_bytes(const LinearAttentionDims& dims);
void linear_attention_backward(void* stream, Arena& scratch, float* dq, float* dk, float* dv, float* dstate_in,
                               const float* dout, const float* dstate_out, const float* q, const float* k,
                               const float* v, const float* decay, const float* state_in,
                               const LinearAttentionDims& dims);
size_t linear_attention_backward_scratch_bytes(const LinearAttentionDims& dims);
void lasp2_chunk_state(void* stream, Arena& scratch, float* M, const float* k, const float* v, const float* decay,
                       const LinearAttentionDims& dims);
void lasp2_add_prefix_output(void* stream, Arena& scratch, float* o, const float* q, const float* P,
                             const float* decay, const LinearAttentionDims& dims);
void lasp2_prefix_state_grad(void* stream, Arena& scratch, float* dP, const float* q, const float* dout,
                             const float* decay, const LinearAttentionDims& dims);
void lasp2_add_prefix_dq(void* stream, Arena& scratch, float* dq, const float* dout, const float* P,
                         const float* decay, const LinearAttentionDims& dims);
void lasp2_add_suffix_dkdv(void* stream, Arena& scratch, float* dk, float* dv, const float* k, const float* v,
                           const float* G, const float* decay, const LinearAttentionDims& dims);
size_t lasp2_terms_scratch_bytes(const LinearAttentionDims& dims);
void lasp2_merge_states(void* stream, Arena& scratch, float* out, const float* gathered, int W, int j, bool suffix,
                        int B, int H, int d, int C, const float* decay);
size_t lasp2_merge_states_scratch_bytes(int B, int H, int d);
void lasp2_scan_states(void* stream, float* states, float* last, const float* first, const float* decay, int B, int n,
                       int H, int d, int L, bool reverse);
}  // namespace cuda

}  // namespace lintrain

// ---- optimizer updates, gradient norm, clipping (runtime/{cpu,cuda}/optim_update) ----
namespace lintrain {

struct AdamStep;
struct LionStep;
struct SpamStep;
struct SpamMaskCount;
enum class AdamTarget;
enum class SgdDirection;
enum class IndexAxis;

namespace cpu {
void adam_update(float* out, float* m, float* v, const float* g, int64_t n, const AdamStep& s, AdamTarget target);
void lion_update(float* p, float* m, const float* g, int64_t n, const LionStep& s);
void spam_update(float* p, float* m, float* v, const float* g, int64_t n, const SpamStep& s);
SpamMaskCount spam_mask_offsets(int64_t* chunk_start, const float* mask, int64_t words, int64_t numel);
void spam_sparse_update(float* p, float* m, float* v, const float* g, const float* mask, int64_t words,
                        const int64_t* chunk_start, const SpamStep& s);
void sgd_update(float* p, const float* d, int64_t n, float decay, float lr, SgdDirection dir);
void scale(float* x, int64_t n, float s);
void subtract(float* out, const float* a, const float* b, int64_t n);
void index_gather(float* out, const float* in, const float* idx, int64_t m, int64_t n, int64_t r, IndexAxis axis);
void index_scatter(float* out, const float* in, const float* idx, int64_t m, int64_t n, int64_t r, IndexAxis axis);
double grad_norm_squared(Arena& scratch, const float* g, int64_t n);
size_t grad_norm_squared_scratch_bytes(int64_t n);
}  // namespace cpu

namespace cuda {
void adam_update(void* stream, float* out, float* m, float* v, const float* g, int64_t n, const AdamStep& s,
                 AdamTarget target);
void lion_update(void* stream, float* p, float* m, const float* g, int64_t n, const LionStep& s);
void spam_update(void* stream, float* p, float* m, float* v, const float* g, int64_t n, const SpamStep& s);
SpamMaskCount spam_mask_offsets(void* stream, int64_t* chunk_start, const float* mask, int64_t words,
                                int64_t numel);
void spam_sparse_update(void* stream, float* p, float* m, float* v, const float* g, const float* mask,
                        int64_t words, const int64_t* chunk_start, const SpamStep& s);
void sgd_update(void* stream, float* p, const float* d, int64_t n, float decay, float lr, SgdDirection dir);
void scale(void* stream, float* x, int64_t n, float s);
void subtract(void* stream, float* out, const float* a, const float* b, int64_t n);
void index_gather(void* stream, float* out, const float* in, const float* idx, int64_t m, int64_t n, int64_t r,
                  IndexAxis axis);
void index_scatter(void* stream, float* out, const float* in, const float* idx, int64_t m, int64_t n, int64_t r,
                   IndexAxis axis);
double grad_norm_squared(void* stream, Arena& scratch, const float* g, int64_t n);
size_t grad_norm_squared_scratch_bytes(int64_t n);
}  // namespace cuda

}  // namespace lintrain

// ---- FP8 numerics (runtime/ops_fp8.cpp; cpu:: in runtime/cpu/fp8.cpp, cuda:: in
// runtime/cuda/fp8.cu or runtime/no_cuda/fp8.cpp) ----
#include "runtime/ops.h"  // Fp8Format, Fp8Counts, Fp8Amax

namespace lintrain {

namespace cpu {
void fp8_encode(uint8_t* out, const float* in, int64_t n, float scale, Fp8Format format, bool saturate,
                Fp8Counts* counts);
void fp8_decode(float* out, const uint8_t* in, int64_t n, float scale_inv, Fp8Format format);
Fp8Amax fp8_amax(const float* x, int64_t n);
void fp8_quantize_blockwise(uint8_t* out, float* scale_inv, const float* in, int rows, int cols, int tile_rows,
                            int tile_cols, Fp8Format format, Fp8Counts* counts);
void fp8_dequantize_blockwise(float* out, const uint8_t* in, const float* scale_inv, int rows, int cols,
                              int tile_rows, int tile_cols, Fp8Format format);
}  // namespace cpu

namespace cuda {
void fp8_encode(void* stream, uint8_t* out, const float* in, int64_t n, float scale, Fp8Format format,
                bool saturate, Fp8Counts* counts);
void fp8_decode(void* stream, float* out, const uint8_t* in, int64_t n, float scale_inv, Fp8Format format);
Fp8Amax fp8_amax(void* stream, Arena& scratch, const float* x, int64_t n);
size_t fp8_amax_scratch_bytes(int64_t n);
void fp8_quantize_blockwise(void* stream, uint8_t* out, float* scale_inv, const float* in, int rows, int cols,
                            int tile_rows, int tile_cols, Fp8Format format, Fp8Counts* counts);
void fp8_dequantize_blockwise(void* stream, float* out, const uint8_t* in, const float* scale_inv, int rows,
                              int cols, int tile_rows, int tile_cols, Fp8Format format);
}  // namespace cuda

}  // namespace lintrain

// ---- gated linear attention (runtime/ops_gla.cpp): CPU only today ----------------
// cpu:: in runtime/cpu/gla.cpp (the kernel) and runtime/cpu/gla_terms.cpp (the
// gated LASP-2 terms, folds and the forget gate).
namespace lintrain::cpu {
void gla_forward(Arena& scratch, float* o, const float* q, const float* k, const float* v, const float* log_gate,
                 const float* state_in, float* state_out, const LinearAttentionDims& dims);
size_t gla_forward_scratch_bytes(const LinearAttentionDims& dims);
void gla_backward(Arena& scratch, float* dq, float* dk, float* dv, float* dlog_gate, float* dstate_in,
                  const float* dout, const float* dstate_out, const float* q, const float* k, const float* v,
                  const float* log_gate, const float* state_in, const LinearAttentionDims& dims);
size_t gla_backward_scratch_bytes(const LinearAttentionDims& dims);
void gla_chunk_state(Arena& scratch, float* M, float* log_decay, const float* k, const float* v,
                     const float* log_gate, const LinearAttentionDims& dims);
void gla_add_prefix_output(Arena& scratch, float* o, const float* q, const float* log_gate, const float* P,
                           const LinearAttentionDims& dims);
void gla_prefix_state_grad(Arena& scratch, float* dP, const float* q, const float* log_gate, const float* dout,
                           const LinearAttentionDims& dims);
void gla_add_suffix_grads(Arena& scratch, float* dk, float* dv, float* dlog_gate, const float* k, const float* v,
                          const float* log_gate, const float* G, const float* S_out, const LinearAttentionDims& dims);
size_t gla_terms_scratch_bytes(const LinearAttentionDims& dims);
void gla_prefix_fold(float* P, float* S_out, const float* gathered, const float* S0, int j, int B, int H, int d);
void gla_suffix_fold(float* G, const float* gathered_dP, const float* gathered, const float* G_end, int W, int j,
                     int B, int H, int d);
void gla_gate_forward(float* log_gate, const float* u, const float* bias, int64_t N, int Hd, float tau);
void gla_gate_backward(float* du, float* dbias, const float* dlog_gate, const float* log_gate, int64_t N, int Hd,
                       float tau);
}  // namespace lintrain::cpu
