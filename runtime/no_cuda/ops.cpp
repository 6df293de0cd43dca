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
void embedding_forward(void*, float*, const int32_t*, const float*, int, int) { no_cuda("embedding_forward"); }
void embedding_backward(void*, float*, const float*, const int32_t*, int, int) { no_cuda("embedding_backward"); }

}  // namespace lintrain::cuda
