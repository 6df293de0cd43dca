// The CUDA bodies of the FP8 ops (runtime/ops.h) in a build without CUDA:
// each throws, naming the op.
#include "runtime/backend.h"
#include "runtime/error.h"

namespace lintrain::cuda {

namespace {
[[noreturn]] void no_cuda(const char* op) {
  throw Error(str_cat("[", op, "] has no CUDA implementation (built without CUDA)"));
}
}  // namespace

void fp8_encode(void*, uint8_t*, const float*, int64_t, float, Fp8Format, bool, Fp8Counts*) {
  no_cuda("fp8_encode");
}
void fp8_decode(void*, float*, const uint8_t*, int64_t, float, Fp8Format) { no_cuda("fp8_decode"); }
Fp8Amax fp8_amax(void*, Arena&, const float*, int64_t) { no_cuda("fp8_amax"); }
size_t fp8_amax_scratch_bytes(int64_t) { no_cuda("fp8_amax"); }
void fp8_quantize_blockwise(void*, uint8_t*, float*, const float*, int, int, int, int, Fp8Format, Fp8Counts*) {
  no_cuda("fp8_quantize_blockwise");
}
void fp8_dequantize_blockwise(void*, float*, const uint8_t*, const float*, int, int, int, int, Fp8Format) {
  no_cuda("fp8_dequantize_blockwise");
}

}  // namespace lintrain::cuda
