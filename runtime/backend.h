// The bodies behind runtime/ops.h, one namespace per device, with the same
// arguments as the op minus the checks (done once in runtime/ops.cpp). Only
// runtime/ops.cpp includes this: everything else calls the ops.
//   cpu::   runtime/cpu/<op>.cpp
//   cuda::  runtime/cuda/<op>.cu, or runtime/no_cuda/ops.cpp (throws)
#pragma once

#include <cstddef>
#include <cstdint>

namespace lintrain {

class Arena;

namespace cpu {
void rmsnorm_forward(float* out, float* rstd, const float* inp, const float* weight, int N, int C, float eps);
void rmsnorm_backward(Arena& scratch, float* dinp, float* dweight, const float* dout, const float* inp,
                      const float* weight, const float* rstd, int N, int C);
size_t rmsnorm_backward_scratch_bytes(int N, int C);
void swiglu_forward(float* h, const float* gate_up, int N, int F);
void swiglu_backward(float* dgate_up, const float* dh, const float* gate_up, int N, int F);
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
void embedding_forward(void* stream, float* out, const int32_t* tokens, const float* wte, int N, int C);
void embedding_backward(void* stream, float* dwte, const float* dout, const int32_t* tokens, int N, int C);
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
