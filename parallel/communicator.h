// Collective communication over a group of ranks. One interface, three
// implementations chosen at run time by what the buffers are and how the job
// was started:
//   - SelfCommunicator: a group of one (single-process runs; copies only),
//   - MpiCommunicator:  host buffers over MPI (parallel/mpi_communicator.h),
//   - NcclCommunicator: device buffers over NCCL (CUDA builds, parallel/nccl).
// Every collective exists in a non-blocking form returning a Request to wait
// on (so LASP-2 overlaps its AllGather with the intra-chunk product and the
// gradient all-reduce overlaps backward), and a blocking convenience form.
// Each communicator counts the bytes each kind of collective sends from this
// rank (the communication-volume test and benchmark read them).
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
  virtual std::string name() const = 0;  // "self", "mpi", "nccl"
  // Where the float buffers of the collectives must live: host memory for
  // self, MPI and threads, GPU memory for NCCL. Layers check it against
  // their context's device.
  virtual Device device() const = 0;

  // recv (size * count) = concatenation of every rank's send (count), in rank order.
  // In place when send == recv + rank * count.
  virtual Request iall_gather(const float* send, float* recv, size_t count) = 0;
  // buf (count) = elementwise sum over ranks, in place.
  virtual Request iall_reduce(float* buf, size_t count) = 0;
  // recv (count) = sum over ranks of send[rank * count .. (rank + 1) * count).
  // send holds size * count values; in place when send == recv (result in recv[0, count)).
  virtual Request ireduce_scatter(const float* send, float* recv, size_t count) = 0;
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

  void all_gather(const float* send, float* recv, size_t count) { iall_gather(send, recv, count)->wait(); }
  void all_reduce(float* buf, size_t count) { iall_reduce(buf, count)->wait(); }
  void reduce_scatter(const float* send, float* recv, size_t count) {
    ireduce_scatter(send, recv, count)->wait();
  }

  const CommStats& stats() const { return stats_; }
  void reset_stats() { stats_ = CommStats{}; }

 protected:
  CommStats stats_;
};

// A group of one rank: gathers and reductions are copies.
std::unique_ptr<Communicator> make_self_communicator();

}  // namespace lintrain
