// The public buffer collectives of every Communicator: one dtype check and one
// byte count here, the collective itself in the implementation.
#include "parallel/communicator.h"

#include "runtime/error.h"

namespace lintrain {

namespace {

void check_summable(const Communicator& c, const char* op, DType dtype) {
  LT_CHECK(summable_dtype(dtype), "[", c.name(), "] ", op, " of ", dtype_name(dtype),
           " is not supported: the reductions sum f32, f64 and bf16 (all_gather moves any dtype)");
}

}  // namespace

Request Communicator::iall_gather(const void* send, void* recv, size_t count, DType dtype) {
  stats_.all_gather_bytes += count * dtype_size(dtype);
  stats_.all_gather_calls += 1;
  return start_all_gather(send, recv, count, dtype);
}

Request Communicator::iall_reduce(void* buf, size_t count, DType dtype) {
  check_summable(*this, "all_reduce", dtype);
  stats_.all_reduce_bytes += count * dtype_size(dtype);
  stats_.all_reduce_calls += 1;
  return start_all_reduce(buf, count, dtype);
}

Request Communicator::ireduce_scatter(const void* send, void* recv, size_t count, DType dtype) {
  check_summable(*this, "reduce_scatter", dtype);
  stats_.reduce_scatter_bytes += static_cast<size_t>(size()) * count * dtype_size(dtype);
  stats_.reduce_scatter_calls += 1;
  return start_reduce_scatter(send, recv, count, dtype);
}

}  // namespace lintrain
