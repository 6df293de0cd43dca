// Linked in place of nccl_communicator.cpp when the build has no NCCL.
#include "parallel/nccl/nccl_communicator.h"
#include "runtime/error.h"

namespace lintrain {

std::unique_ptr<Communicator> make_nccl_communicator(Communicator&, int, void*) {
  throw Error(
      "[nccl] this lintrain was built without NCCL; rebuild with -DLINTRAIN_CUDA=ON on a machine "
      "with the CUDA toolkit and NCCL (nccl.h, libnccl.so)");
}

}  // namespace lintrain
