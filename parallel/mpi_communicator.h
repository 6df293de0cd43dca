// MPI for processes and host-buffer collectives.
//
// MpiRuntime owns MPI's lifetime in one process: construct it first thing in
// main (before any thread that may call MPI), keep it alive until every
// MpiCommunicator is gone. A process started without mpirun/srun is an MPI
// singleton: a world of one rank, so `lintrain train` works unchanged on a
// laptop.
//
// MpiCommunicator implements Communicator on one MPI communicator with the
// non-blocking collectives of MPI-3 (MPI_Iallgather, MPI_Iallreduce,
// MPI_Ireduce_scatter_block). f32 and f64 are MPI_FLOAT and MPI_DOUBLE summed
// with MPI_SUM; bf16 travels as MPI_UINT16_T and is summed by a user-defined
// MPI_Op (each combine in f32, rounded to nearest-even bf16), created once
// per process on first use and freed by MpiRuntime before MPI_Finalize; an
// all_gather of another dtype moves it as unsigned integers of its size.
// Note for overlap: Open MPI 4.1 has
// no asynchronous progress thread ("OMPI progress: no" in ompi_info), so a
// request started here advances only while some thread of this process is
// inside MPI. Code that wants communication to run behind computation either
// waits on the request from a communication thread (GradReducer does) or
// accepts that the transfer happens inside wait() (LASP-2's small AllGather).
// Calls from several threads at once need MPI_THREAD_MULTIPLE, which
// MpiRuntime requires.
//
// Errors: every MPI call goes through LT_MPI_CHECK; communicators made here
// return errors (MPI_ERRORS_RETURN) instead of MPI's default of aborting, so a
// failure becomes a lintrain::Error naming the call, file:line, rank and host.
// main() catches it, prints it and calls MpiRuntime::abort to end every rank.
//
// Stalls: every blocking wait here (MpiRequest::wait, all_reduce_f64,
// broadcast, barrier, split) is watched by the collective watchdog
// (parallel/watchdog.h). In a job of more than one rank MpiRuntime runs its
// thread, on its own duplicate of MPI_COMM_WORLD: a wait still in flight
// after parallel.timeout_s makes it probe every rank and MPI_Abort the job
// with a message naming the collective and the ranks that did not answer.
#pragma once

#include <mpi.h>

#include <memory>
#include <string>

#include "parallel/communicator.h"

// Throws lintrain::Error("[mpi] <call> failed at <file>:<line> on rank R
// (host H): <MPI's error string>") when `call` does not return MPI_SUCCESS.
#define LT_MPI_CHECK(call)                                                                             \
  do {                                                                                                 \
    const int lt_mpi_rc_ = (call);                                                                     \
    if (lt_mpi_rc_ != MPI_SUCCESS) ::lintrain::throw_mpi_error(lt_mpi_rc_, #call, __FILE__, __LINE__); \
  } while (0)

namespace lintrain {

[[noreturn]] void throw_mpi_error(int rc, const char* call, const char* file, int line);

class MpiRuntime {
 public:
  // MPI_Init_thread asking for MPI_THREAD_MULTIPLE; throws lintrain::Error if
  // the library provides less, or if MPI was already finalized. If MPI is
  // already initialised (by a host application) it is used as is and left
  // running at destruction. argc/argv may be null.
  explicit MpiRuntime(int* argc = nullptr, char*** argv = nullptr);
  // MPI_Finalize when this object initialised MPI. Never throws.
  ~MpiRuntime();
  MpiRuntime(const MpiRuntime&) = delete;
  MpiRuntime& operator=(const MpiRuntime&) = delete;

  int rank() const { return rank_; }  // in MPI_COMM_WORLD
  int size() const { return size_; }
  int local_rank() const { return local_rank_; }  // among the ranks of this node (GPU index)
  int local_size() const { return local_size_; }
  const std::string& host() const { return host_; }
  int thread_level() const { return thread_level_; }  // MPI_THREAD_* provided

  // A communicator over every rank, on a duplicate of MPI_COMM_WORLD (so
  // lintrain's traffic never matches a host application's). Collective.
  std::unique_ptr<Communicator> world() const;

  // Ends the whole job (every rank) with `code`: MPI_Abort on MPI_COMM_WORLD,
  // or _Exit when MPI is not running.
  [[noreturn]] static void abort(int code) noexcept;
  // MPI is initialised and not yet finalized.
  static bool active() noexcept;

 private:
  bool owns_ = false;
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1, thread_level_ = 0;
  std::string host_;
  class Watchdog;  // the watchdog thread (mpi_communicator.cpp); stopped before MPI_Finalize
  std::unique_ptr<Watchdog> watchdog_;
};

class MpiCommunicator : public Communicator {
 public:
  // Wraps `comm`; frees it in the destructor when `owned` (skipped once MPI is
  // finalized). Sets MPI_ERRORS_RETURN on it.
  MpiCommunicator(MPI_Comm comm, bool owned);
  ~MpiCommunicator() override;
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override { return "mpi"; }
  Device device() const override { return Device::CPU; }
  MPI_Comm handle() const { return comm_; }

  void all_reduce_f64(double* buf, size_t count) override;
  void broadcast(void* buf, size_t bytes, int root) override;
  void barrier() override;
  // MPI_Comm_split; the result owns its MPI_Comm.
  std::unique_ptr<Communicator> split(int color, int key) override;

 protected:
  // Buffers are host memory. Element counts up to INT_MAX per rank for
  // all-gather and reduce-scatter; all-reduce and broadcast take any size
  // (split into several MPI calls behind one Request).
  Request start_all_gather(const void* send, void* recv, size_t count, DType dtype) override;
  Request start_all_reduce(void* buf, size_t count, DType dtype) override;
  Request start_reduce_scatter(const void* send, void* recv, size_t count, DType dtype) override;

 private:
  MPI_Comm comm_;
  bool owned_;
  int rank_ = 0, size_ = 1;
  int group_ = -1;  // watchdog::register_group id: "the world group (N ranks)", ...
};

}  // namespace lintrain
