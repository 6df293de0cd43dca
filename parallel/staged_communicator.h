// A communicator for device buffers that runs the collectives of a host
// communicator (MPI, threads, self) by copying through host memory.
//
// Why: NCCL refuses two ranks of one group on the same GPU, so on a machine
// with one GPU the only way to run SP=2 or DP=2 (two ranks sharing that GPU)
// is to move the data over a host communicator. Each buffer collective copies
// the device buffer into a host staging buffer (copy_to_host, which waits for
// the work queued before it), starts the host communicator's collective on
// it, in place, and once that completes copies the result back
// (copy_from_host). It is for tests and single-GPU multi-rank runs, not for
// speed: every collective crosses PCIe twice and nothing overlaps the copies.
// On Device::CPU the copies are plain memcpy, which lets the CPU tests run the
// whole staging logic.
//
// Results are exactly the host communicator's for the same data and dtype
// (its reduction order, its bf16 rounding). The non-blocking forms download
// and start the host collective at the call; the Request's wait() (or its
// destructor) waits for the host collective, then uploads the result. In-place
// calls work as the interface says. Staging buffers are reused from one pool
// per communicator (one buffer per collective in flight, grown as needed), so
// once warm a collective allocates no staging memory (only its Request). all_reduce_f64, broadcast and
// barrier take host data and go to the host communicator unchanged.
//
// The interface's threading rule holds: one thread at a time per staged
// communicator, and the host communicator is used only through it.
#pragma once

#include <memory>

#include "parallel/communicator.h"

namespace lintrain {

// Takes ownership of `host` (a communicator of host buffers). device() is
// `device`; name() is host's name + "+staged" ("mpi+staged"); split() returns
// a staged communicator over host's split, on the same device.
std::unique_ptr<Communicator> make_staged_communicator(std::unique_ptr<Communicator> host, Device device);

}  // namespace lintrain
