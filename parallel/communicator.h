// Collective communication over a group of ranks. One interface, several
// implementations chosen at run time by what the buffers are and how the job
// was started:
//   - SelfCommunicator: a group of one (single-process runs; copies only),
//   - MpiCommunicator:  host buffers over MPI (parallel/mpi_communicator.h),
//   - NcclCommunicator: device buffers over NCCL (CUDA builds, parallel/nccl),
//   - a staged communicator: device buffers copied through the host to one of
//     the above (several ranks on one GPU; parallel/staged_communicator.h).
// Every collective exists in a non-blocking form returning a Request to wait
// on (so LASP-2 overlaps its AllGather with the intra-chunk product and the
// gradient all-reduce overlaps backward), and a blocking convenience form.
// Each communicator counts the bytes each kind of collective sends from this
// rank (the communication-volume test and benchmark read them). The buffer
// collectives carry a dtype (f32 for the float forms every layer calls).
//
// Threading: one Communicator object is one rank's handle on one group. Calls
// on it (collectives, wait(), stats()) come from one thread at a time, and
// every rank of the group calls the same collectives in the same order (as in
// MPI). Different Communicator objects (the SP group and the all-ranks group,
// say) may be used from different threads at the same time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "runtime/dtype.h"
#include "runtime/tensor.h"  // Device

namespace lintrain {

// A pending collective. wait() blocks until it is complete and its output
// buffer may be read; the destructor waits too (never leaves MPI holding
// pointers into freed memory) and never throws.
class CommRequest {
 public:
  virtual ~CommRequest() = default;
  virtual void wait() = 0;
};
using Request = std::unique_ptr<CommRequest>;

// Bytes this rank hands to each kind of collective (its send-buffer size),
// and how many calls. Reset with reset_stats().
struct CommStats {
  uint64_t all_gather_bytes = 0, all_gather_calls = 0;
  uint64_t all_reduce_bytes = 0, all_reduce_calls = 0;
  uint64_t reduce_scatter_bytes = 0, reduce_scatter_calls = 0;
  uint64_t broadcast_bytes = 0, broadcast_calls = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string name() const = 0;  // "self", "thread", "mpi", "nccl", "mpi+staged"
  // Where the buffers of all_gather, all_reduce and reduce_scatter must live:
  // host memory for self, MPI and threads, GPU memory for NCCL and for a
  // staged communicator over a GPU (parallel/staged_communicator.h). Layers
  // check it against their context's device.
  virtual Device device() const = 0;

  // Buffer collectives. `count` is in elements of `dtype`; buffers hold
  // count * dtype_size(dtype) bytes per rank (size * that where noted).
  //   all_gather moves any dtype (a byte move).
  //   all_reduce and reduce_scatter sum f32, f64 and bf16; any other dtype is
  //   refused with a lintrain::Error naming the collective and the dtype.
  //   A bf16 sum is taken in f32 and rounded to nearest-even bf16 after each
  //   combine step (as NCCL does), so unlike an f32 sum of small integers its
  //   result depends on the order the implementation combines the ranks in
  //   (rank order for threads, the library's tree or ring for MPI and NCCL).
  // Each call counts this rank's send-buffer bytes (dtype_size(dtype) per
  // element) in stats(), then starts the collective; the float forms are the
  // f32 case of the same calls.
  //
  // recv (size * count) = concatenation of every rank's send (count), in rank order.
  // In place when send == recv + rank * count (elements).
  Request iall_gather(const void* send, void* recv, size_t count, DType dtype);
  // buf (count) = elementwise sum over ranks, in place.
  Request iall_reduce(void* buf, size_t count, DType dtype);
  // recv (count) = sum over ranks of send[rank * count .. (rank + 1) * count).
  // send holds size * count values; in place when send == recv (result in recv[0, count)).
  Request ireduce_scatter(const void* send, void* recv, size_t count, DType dtype);

  Request iall_gather(const float* send, float* recv, size_t count) {
    return iall_gather(send, recv, count, DType::F32);
  }
  Request iall_reduce(float* buf, size_t count) { return iall_reduce(buf, count, DType::F32); }
  Request ireduce_scatter(const float* send, float* recv, size_t count) {
    return ireduce_scatter(send, recv, count, DType::F32);
  }

  // Blocking collectives of small host data.
  virtual void all_reduce_f64(double* buf, size_t count) = 0;
  virtual void broadcast(void* buf, size_t bytes, int root) = 0;
  virtual void barrier() = 0;

  // Splits the group, collectively: every rank calls it; ranks passing the same
  // color >= 0 form one new group, ranked by (key, rank in this group). A
  // negative color joins no group and gets nullptr. The new communicator is
  // independent of this one (its own stats, may outlive it) and of the same
  // kind (an MPI communicator splits into MPI communicators).
  virtual std::unique_ptr<Communicator> split(int color, int key) = 0;

  void all_gather(const void* send, void* recv, size_t count, DType dtype) {
    iall_gather(send, recv, count, dtype)->wait();
  }
  void all_reduce(void* buf, size_t count, DType dtype) { iall_reduce(buf, count, dtype)->wait(); }
  void reduce_scatter(const void* send, void* recv, size_t count, DType dtype) {
    ireduce_scatter(send, recv, count, dtype)->wait();
  }
  void all_gather(const float* send, float* recv, size_t count) { iall_gather(send, recv, count)->wait(); }
  void all_reduce(float* buf, size_t count) { iall_reduce(buf, count)->wait(); }
  void reduce_scatter(const float* send, float* recv, size_t count) {
    ireduce_scatter(send, recv, count)->wait();
  }

  const CommStats& stats() const { return stats_; }
  void reset_stats() { stats_ = CommStats{}; }

 protected:
  // What each implementation provides: the collective itself, called after
  // the public form has checked the dtype (sums: f32, f64, bf16 only) and
  // counted the bytes.
  virtual Request start_all_gather(const void* send, void* recv, size_t count, DType dtype) = 0;
  virtual Request start_all_reduce(void* buf, size_t count, DType dtype) = 0;
  virtual Request start_reduce_scatter(const void* send, void* recv, size_t count, DType dtype) = 0;

  CommStats stats_;
};

// The dtypes all_reduce and reduce_scatter sum.
inline bool summable_dtype(DType t) { return t == DType::F32 || t == DType::F64 || t == DType::BF16; }

// A group of one rank: gathers and reductions are copies.
std::unique_ptr<Communicator> make_self_communicator();

}  // namespace lintrain
