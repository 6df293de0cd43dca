// Communicator over NCCL for device buffers (CUDA builds with NCCL; a build
// without it links parallel/nccl/no_nccl.cpp, whose factory throws). This
// header needs neither CUDA nor NCCL headers.
//
// Buffers passed to the buffer collectives are device pointers on `device`;
// sums are ncclFloat32, ncclFloat64 and ncclBfloat16 (NCCL adds bf16 in f32
// and rounds each step), an all_gather of another dtype moves bytes.
// Each communicator owns a CUDA stream its collectives run on: a collective
// first makes that stream wait for the work already queued on the compute
// stream (so it reads finished data), then queues the NCCL call and records a
// CUDA event; the Request's wait() synchronises on that event (the output is
// then complete for both host and device readers). all_reduce_f64, broadcast
// and barrier take host data, as the interface says, staging it through a
// small device buffer. split() is ncclCommSplit.
//
// Threading: every call sets the current device first, so a communication
// thread (GradReducer's) may use the communicator.
#pragma once

#include <memory>

#include "parallel/communicator.h"

namespace lintrain {

// Rank bootstrap.rank() of an NCCL group of bootstrap.size() ranks on CUDA
// device `device`. Collective over `bootstrap` (an MpiCommunicator in a real
// job): rank 0 creates the NCCL unique id and broadcasts it, then every rank
// calls ncclCommInitRank. `compute_stream` is the cudaStream_t (cast to void*)
// on which the caller produces and consumes the buffers; nullptr means the
// legacy default stream. name() is "nccl".
std::unique_ptr<Communicator> make_nccl_communicator(Communicator& bootstrap, int device,
                                                     void* compute_stream = nullptr);

}  // namespace lintrain
