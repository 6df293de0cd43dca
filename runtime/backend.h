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
