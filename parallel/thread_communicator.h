// W ranks as W threads of one process: the Communicator that lets LASP-2 unit
// tests and the LASP-1/LASP-2 benchmark run a whole sequence-parallel group
// inside one test binary, with no MPI.
//
// Semantics are MPI's: every rank calls the same collectives in the same
// order; a non-blocking collective completes once every rank of the group has
// posted it (no rank has to be waiting yet), so overlapped code paths run as
// they would under MPI. Results are deterministic and bit-reproducible: sums
// are taken in rank order, ((rank 0 + rank 1) + rank 2) + ..., whichever
// thread happens to compute them (bf16: each step in f32, rounded to bf16).
// They equal MPI's up to reduction order.
//
// How it works: each group keeps its collectives in flight in a table keyed
// by a per-rank sequence number. Posting records the rank's send pointer; the
// last rank to post computes the whole result into a buffer owned by the
// collective (reading every rank's send buffer, which MPI rules say must stay
// untouched until completion), and each rank's wait() copies its part out.
// Costs one extra copy per collective: these communicators are for tests and
// in-process benchmarks, not for speed.
//
// Failure: a mismatched collective (rank 0 all-gathers 4 values, rank 1
// all-reduces 5), a rank that throws, or a rank that returns from run_ranks'
// function while the others wait for it, aborts every group of the world:
// the waiting ranks throw lintrain::Error instead of hanging, and run_ranks
// rethrows the first exception.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "parallel/communicator.h"

namespace lintrain {

// world_size communicators, element r being rank r of one group; name() is
// "thread". Hand each to its own thread. split() works as documented in
// Communicator (the new groups belong to the same world and abort with it).
std::vector<std::unique_ptr<Communicator>> make_thread_communicators(int world_size);

// Starts world_size threads; thread r runs fn(rank r's communicator). Returns
// when all have returned; if any threw, aborts the others' collectives and
// rethrows the first exception (its original type) after joining them all.
void run_ranks(int world_size, const std::function<void(Communicator&)>& fn);

}  // namespace lintrain
