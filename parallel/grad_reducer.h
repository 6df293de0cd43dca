// Bucketed gradient all-reduce, overlapped with backward.
//
// The gradients live in one FlatBuffer laid out by the ParamTable. The
// reducer cuts the table into buckets of whole tensors of about bucket_bytes
// each, walking the table from its LAST tensor to its first (backward
// produces the last layers' gradients first), so bucket 0 holds the tail of
// the buffer. A bucket's tensors are adjacent in the buffer and it reduces
// one contiguous slice: from its first tensor's offset up to the next
// bucket's first offset (or the buffer end), padding included. The buckets
// tile the whole buffer. A tensor larger than bucket_bytes is a bucket alone.
//
// Per step: backward calls mark_ready(view) once per tensor when its gradient
// is final (the slice must not be written after that); when every tensor of a
// bucket is marked, the bucket is handed to the communication thread. finish()
// marks whatever was not marked, waits for every bucket, and rethrows a
// communication failure. The sum is NOT averaged: the loss scaling already
// makes each rank's gradient its share of the global mean.
//
// How the overlap works, and why a thread: Open MPI 4.1 has no asynchronous
// progress for non-blocking collectives (ompi_info: "OMPI progress: no"); an
// MPI_Iallreduce posted by the compute thread only advances while that
// thread is inside MPI (MPI_Test/MPI_Wait), i.e. after backward, not during
// it. Measured on the dev box (2 ranks, 64 MB, shared memory, the
// "computation" a 300 ms sleep): a blocking MPI_Allreduce takes 64-85 ms; an
// MPI_Iallreduce posted before the computation still spent 85-90 ms in
// MPI_Wait after it; the same collective run by a second thread was already
// done (0 ms). So each reducer owns one communication thread that takes ready
// buckets and runs each collective to completion (iall_reduce + wait; MPI_Wait
// drives the progress engine), while the caller's thread computes the next
// layers' gradients. Calls from two threads at once need MPI_THREAD_MULTIPLE, which
// MpiRuntime insists on. The thread polls inside MPI_Wait while a bucket is in
// flight, so it takes a core for that time; the LASP-2 AllGathers on the SP
// communicator run from the compute thread meanwhile (a separate
// communicator, so they never interleave with the bucket collectives).
//
// Order and determinism: buckets are reduced strictly in bucket order 0, 1,
// 2, ..., whatever order the tensors are marked in, so every rank issues the
// same sequence of collectives (MPI requires it) even if ranks mark in
// different orders; a bucket marked early just waits for its predecessors.
// Fixed bucket boundaries and one collective per bucket make the result a
// pure function of the ranks' buffers: same inputs, same bits.
//
// Threading contract: mark_ready/finish come from one thread. While a step is
// in flight (first mark_ready to finish) the reducer's communicator belongs to
// the communication thread: do not call it (or read its stats) elsewhere.
// `comm` and `grads` are borrowed and must outlive the reducer. The buffer may
// be host or device memory, matching what `comm` reduces.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "parallel/communicator.h"
#include "runtime/param_table.h"

namespace lintrain {

struct GradBucket {
  int first_view, last_view;  // table indices [first_view, last_view], ascending
  int64_t offset, numel;      // slice of the flat buffer (elements), padding included
};

class GradReducer {
 public:
  static constexpr size_t kDefaultBucketBytes = size_t{25} << 20;  // 25 MiB, as PyTorch DDP

  // Buckets `table`'s tensors; `grads` is laid out by `table`. Starts the
  // communication thread. bucket_bytes >= 1.
  GradReducer(const ParamTable& table, FlatBuffer& grads, Communicator& comm,
              size_t bucket_bytes = kDefaultBucketBytes);
  // Lets a collective in flight complete (the other ranks wait for it), then
  // stops the thread. Never throws. Destroy only after finish() on every rank.
  ~GradReducer();
  GradReducer(const GradReducer&) = delete;
  GradReducer& operator=(const GradReducer&) = delete;

  // The gradient of table view `view_index` is final for this step. Throws
  // lintrain::Error for an index out of range or a tensor marked twice.
  void mark_ready(int view_index);
  // Reduces every bucket not yet reduced, waits for all of them and readies
  // the reducer for the next step. Rethrows the communication thread's error.
  void finish();

  // Buckets reduced so far this step (they complete in bucket order), for
  // tests and progress logs.
  size_t reduced_buckets() const;
  const std::vector<GradBucket>& buckets() const { return buckets_; }
  int bucket_of(int view_index) const { return bucket_of_view_.at(static_cast<size_t>(view_index)); }

 private:
  void run_communication_thread();

  const ParamTable& table_;
  float* data_;
  Communicator& comm_;
  std::vector<GradBucket> buckets_;
  std::vector<int> bucket_of_view_;

  // Step state, guarded by mu_.
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<char> marked_;   // by view
  std::vector<int> unmarked_;  // by bucket: tensors still to be marked
  size_t next_bucket_ = 0;     // buckets [0, next_bucket_) are reduced
  bool stop_ = false;
  std::exception_ptr error_;
  std::thread thread_;
};

}  // namespace lintrain
