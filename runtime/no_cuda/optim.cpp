// The CUDA bodies of the optimizer ops (runtime/ops.h) in a build without
// CUDA: each throws, naming the op.
#include "runtime/backend.h"
#include "runtime/error.h"
#include "runtime/ops.h"

namespace lintrain::cuda {

namespace {
[[noreturn]] void no_cuda(const char* op) {
  throw Error(str_cat("[", op, "] has no CUDA implementation (built without CUDA)"));
}
}  // namespace

void adam_update(void*, float*, float*, float*, const float*, int64_t, const AdamStep&, AdamTarget) {
  no_cuda("adam_update");
}
void lion_update(void*, float*, float*, const float*, int64_t, const LionStep&) { no_cuda("lion_update"); }
void spam_update(void*, float*, float*, float*, const float*, int64_t, const SpamStep&) { no_cuda("spam_update"); }
SpamMaskCount spam_mask_offsets(void*, int64_t*, const float*, int64_t, int64_t) { no_cuda("spam_mask_offsets"); }
void spam_sparse_update(void*, float*, float*, float*, const float*, const float*, int64_t, const int64_t*,
                        const SpamStep&) {
  no_cuda("spam_sparse_update");
}
void sgd_update(void*, float*, const float*, int64_t, float, float, SgdDirection) { no_cuda("sgd_update"); }
void scale(void*, float*, int64_t, float) { no_cuda("scale"); }
void subtract(void*, float*, const float*, const float*, int64_t) { no_cuda("subtract"); }
void index_gather(void*, float*, const float*, const float*, int64_t, int64_t, int64_t, IndexAxis) {
  no_cuda("index_gather");
}
void index_scatter(void*, float*, const float*, const float*, int64_t, int64_t, int64_t, IndexAxis) {
  no_cuda("index_scatter");
}
double grad_norm_squared(void*, Arena&, const float*, int64_t) { no_cuda("grad_norm_squared"); }
size_t grad_norm_squared_scratch_bytes(int64_t) { no_cuda("grad_norm_squared"); }

}  // namespace lintrain::cuda
