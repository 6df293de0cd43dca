// Where an op runs: the device, the stream its work is ordered on, and the
// scratch arena its temporaries come from. Every op of runtime/ops.h takes
// one; layers and the model own theirs (one per model replica).
#pragma once

#include "runtime/arena.h"
#include "runtime/tensor.h"

namespace lintrain {

struct Context {
  Device device = Device::CPU;
  void* stream = nullptr;    // cudaStream_t on CUDA (null = the default stream); unused on the CPU
  Arena* scratch = nullptr;  // on `device`; ops that need scratch refuse a null one

  // The arena, or an Error naming `op` when the context has none.
  Arena& arena(const char* op) const;
};

}  // namespace lintrain
