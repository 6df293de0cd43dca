// The collective watchdog: a wait in a collective that has not completed
// after parallel.timeout_s ends the whole job with a message naming the
// collective and the ranks that are not progressing, instead of a job that
// spins forever behind one stopped, hung or dead rank (NCCL's watchdog does
// the same for NCCL).
//
// Two halves:
//   - this file, free of MPI: the process-wide bookkeeping. Every blocking
//     wait of MpiCommunicator holds a WaitScope while in flight; the trainer
//     sets the timeout and the current step; an Allowance scope lends extra
//     seconds to a phase where other ranks legitimately wait longer (a
//     checkpoint save). It also builds the probe answers and the final
//     message (pure functions, unit-tested in tests/unit/test_watchdog.cpp).
//   - parallel/mpi_communicator.cpp: the thread (started by MpiRuntime in a
//     job of more than one rank, stopped before MPI_Finalize) that checks the
//     waits once per second, answers other ranks' probes on its own duplicate
//     of MPI_COMM_WORLD, and, when a wait is overdue, probes every rank, waits
//     up to 5 s for the answers and calls MPI_Abort with the message.
//
// Hot path: WaitScope claims one of a fixed set of slots with one
// compare-exchange and writes it with relaxed atomics under a sequence
// counter (no lock, no allocation); two waits may be in flight at once (the
// gradient all-reduce runs on its own thread).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lintrain::watchdog {

// Seconds a wait may take before the job is aborted; 0 (the default until the
// trainer sets parallel.timeout_s) turns the watchdog off.
void set_timeout(double seconds);
double timeout();
// The training step in progress (1-based, as the log prints it); 0 = before
// the first step. A relaxed atomic store.
void set_step(int64_t step);
int64_t step();

// Registers a description of a group ("the world group (2 ranks)") once, at
// communicator construction; waits name their group by the returned id.
int register_group(const std::string& description);
std::string group_description(int id);

// While alive, one blocking wait in `op` (a string literal: "all_reduce",
// "barrier", ...) on group `group` is in flight on this thread. If every slot
// is taken (more than kSlots concurrent waits) the wait is simply not watched.
class WaitScope {
 public:
  WaitScope(const char* op, int group) noexcept;
  ~WaitScope();
  WaitScope(const WaitScope&) = delete;
  WaitScope& operator=(const WaitScope&) = delete;

 private:
  int slot_;
};

// While alive, every wait of this rank may take `seconds` longer, and a rank
// whose wait times out while this rank holds an allowance waits as long again
// before aborting (this rank answers its probe with the time left). Nests
// (allowances add up). end() ends it early.
class Allowance {
 public:
  explicit Allowance(double seconds) noexcept;
  ~Allowance() { end(); }
  void end() noexcept;
  Allowance(const Allowance&) = delete;
  Allowance& operator=(const Allowance&) = delete;

 private:
  double seconds_;
  int64_t until_ns_;
  bool active_ = true;
};

constexpr int kSlots = 16;

// Seconds on the steady clock (the wait timestamps' clock).
double now_s();

// One wait in flight, as the checking thread sees it.
struct Wait {
  const char* op = nullptr;
  int group = -1;
  double started_s = 0;  // now_s() when it began
};
// The waits in flight now (a consistent copy of each slot).
std::vector<Wait> in_flight();
// Extra seconds lent by the active allowances, and how long the longest of
// them still runs (0 when none).
double allowance_s();
double allowance_left_s(double now);

// The wait that has exceeded timeout() + allowance_s() at `now`, if any (the
// oldest); false when the watchdog is off or nothing is overdue.
bool find_overdue(double now, Wait* out);

// What a rank answers a probe with: fixed-size, sent as bytes between ranks
// of the same binary.
struct RankState {
  int32_t rank = -1;
  int32_t answered = 0;  // filled by the prober: an answer arrived in time
  int32_t waiting = 0;   // in a collective (the longest-running one below)
  int32_t overdue = 0;   // that wait is itself past this rank's timeout
  int64_t step = 0;
  double waited_s = 0;
  double allowance_left_s = 0;
  char op[32] = {};
  char group[96] = {};
};
// This rank's state at `now`.
RankState local_state(int rank, double now);

// The abort message (without the "lintrain: error (rank R on H): " prefix):
// `stuck` is this rank's overdue wait, `limit_s` the time it was allowed,
// `states` one per world rank (answered or not), `hosts` their host names.
std::string timeout_message(const Wait& stuck, double limit_s, double timeout_s, int64_t step,
                            const std::vector<RankState>& states, const std::vector<std::string>& hosts);

// "0-3, 5, 7-8": a sorted list of ranks, runs compressed.
std::string format_ranks(const std::vector<int>& ranks);

}  // namespace lintrain::watchdog
