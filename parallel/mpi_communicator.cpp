// MpiRuntime and MpiCommunicator (see mpi_communicator.h).
#include "parallel/mpi_communicator.h"

#include "runtime/process.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <list>
#include <mutex>
#include <thread>
#include <vector>

#include "parallel/watchdog.h"
#include "runtime/error.h"

namespace lintrain {

namespace {

// Largest element count handed to one MPI call (MPI counts are int).
constexpr size_t kMaxMpiCount = static_cast<size_t>(INT_MAX);

int as_count(size_t n, const char* op) {
  LT_CHECK(n <= kMaxMpiCount, "[mpi] ", op, " of ", n, " elements per rank exceeds MPI's int count (", INT_MAX,
           "); split the buffer");
  return static_cast<int>(n);
}

// One or more MPI requests completed together.
// `op` (a string literal) and `group` name the wait for the watchdog.
class MpiRequest : public CommRequest {
 public:
  MpiRequest(std::vector<MPI_Request> reqs, const char* op, int group)
      : reqs_(std::move(reqs)), op_(op), group_(group) {}

  void wait() override {
    if (reqs_.empty()) return;
    std::vector<MPI_Request> reqs = std::move(reqs_);
    reqs_.clear();
    const watchdog::WaitScope watched(op_, group_);
    LT_MPI_CHECK(MPI_Waitall(static_cast<int>(reqs.size()), reqs.data(), MPI_STATUSES_IGNORE));
  }

  ~MpiRequest() override {
    // Never leave MPI writing into a buffer the caller is about to free; errors
    // here have nowhere to go (a destructor never throws).
    if (!reqs_.empty() && MpiRuntime::active()) {
      const watchdog::WaitScope watched(op_, group_);
      (void)MPI_Waitall(static_cast<int>(reqs_.size()), reqs_.data(), MPI_STATUSES_IGNORE);
    }
  }

 private:
  std::vector<MPI_Request> reqs_;
  const char* op_;
  int group_;
};

// The element type MPI sees for `dtype`: its own where MPI has one, else an
// unsigned integer of its size (bf16 and fp8 have no MPI type; all_gather
// only moves them, and bf16 sums go through bf16_sum_op).
MPI_Datatype mpi_datatype(DType t) {
  switch (t) {
    case DType::F32: return MPI_FLOAT;
    case DType::F64: return MPI_DOUBLE;
    case DType::I32: return MPI_INT32_T;
    case DType::I64: return MPI_INT64_T;
    case DType::U32: return MPI_UINT32_T;
    case DType::U64: return MPI_UINT64_T;
    case DType::BF16:
    case DType::U16: return MPI_UINT16_T;
    case DType::F8E4M3:
    case DType::F8E5M2: return MPI_UINT8_T;
  }
  throw Error(str_cat("[mpi] no MPI datatype for dtype ", static_cast<int>(t)));
}

// inout[i] = in[i] + inout[i] in bf16: the sum taken in f32, rounded to
// nearest even (as NCCL's bf16 sum). Commutative, so MPI may combine in any
// order; the result then depends on that order, as any bf16 sum's does.
void bf16_sum(void* in, void* inout, int* len, MPI_Datatype*) {
  const auto* a = static_cast<const uint16_t*>(in);
  auto* b = static_cast<uint16_t*>(inout);
  for (int i = 0; i < *len; ++i) b[i] = f32_to_bf16(bf16_to_f32(a[i]) + bf16_to_f32(b[i]));
}

std::mutex g_bf16_op_mu;
MPI_Op g_bf16_op = MPI_OP_NULL;

MPI_Op bf16_sum_op() {
  std::lock_guard<std::mutex> lock(g_bf16_op_mu);
  if (g_bf16_op == MPI_OP_NULL) LT_MPI_CHECK(MPI_Op_create(&bf16_sum, /*commute=*/1, &g_bf16_op));
  return g_bf16_op;
}

// Before MPI_Finalize (MpiRuntime's destructor). Never throws.
void free_bf16_sum_op() noexcept {
  std::lock_guard<std::mutex> lock(g_bf16_op_mu);
  if (g_bf16_op != MPI_OP_NULL) (void)MPI_Op_free(&g_bf16_op);
  g_bf16_op = MPI_OP_NULL;
}

MPI_Op mpi_sum(DType t) { return t == DType::BF16 ? bf16_sum_op() : MPI_SUM; }

std::string world_group_description(int size) {
  return str_cat("the world group (", size, size == 1 ? " rank)" : " ranks)");
}

// "the world group (4 ranks)", or "a group of 2 ranks (world ranks 2-3)".
std::string describe_group(MPI_Comm comm, int size) {
  int cmp = MPI_UNEQUAL;
  if (MPI_Comm_compare(comm, MPI_COMM_WORLD, &cmp) == MPI_SUCCESS && (cmp == MPI_IDENT || cmp == MPI_CONGRUENT))
    return world_group_description(size);
  std::string desc = str_cat("a group of ", size, size == 1 ? " rank" : " ranks");
  MPI_Group group = MPI_GROUP_NULL, world = MPI_GROUP_NULL;
  std::vector<int> mine(static_cast<size_t>(size)), theirs(static_cast<size_t>(size), MPI_UNDEFINED);
  for (int i = 0; i < size; ++i) mine[static_cast<size_t>(i)] = i;
  if (MPI_Comm_group(comm, &group) == MPI_SUCCESS && MPI_Comm_group(MPI_COMM_WORLD, &world) == MPI_SUCCESS &&
      MPI_Group_translate_ranks(group, size, mine.data(), world, theirs.data()) == MPI_SUCCESS) {
    std::sort(theirs.begin(), theirs.end());
    desc += str_cat(" (world ranks ", watchdog::format_ranks(theirs), ")");
  }
  if (group != MPI_GROUP_NULL) MPI_Group_free(&group);
  if (world != MPI_GROUP_NULL) MPI_Group_free(&world);
  return desc;
}

}  // namespace

// ---- the watchdog thread -----------------------------------------------------------
//
// One per process in a job of more than one rank, on its own duplicate of
// MPI_COMM_WORLD (its messages never match lintrain's collectives). Every
// 100 ms it answers the probes other ranks sent (an MPI_Irecv is always
// posted for them) with this rank's state; once per second it looks for an
// overdue wait (watchdog::find_overdue). On one, it probes every other rank,
// gives them 5 s to answer (a stopped, hung-in-the-kernel or dead rank does
// not: its watchdog thread does not run), and ends the job with MPI_Abort and
// a message naming the collective, the silent ranks and what the others wait
// in. If every rank answered and one of them holds an allowance (it is saving
// a checkpoint), it waits as long as that allowance has left and looks again.
// When several ranks time out together, a higher rank lets the lowest one
// report (it aborts after 15 s itself if the job is still there).
class MpiRuntime::Watchdog {
 public:
  Watchdog(int rank, int size, const std::string& host) : rank_(rank), size_(size) {
    LT_MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &comm_));
    LT_MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
    char mine[kHostLen] = {};
    std::snprintf(mine, sizeof mine, "%s", host.c_str());
    std::vector<char> all(static_cast<size_t>(size) * kHostLen);
    LT_MPI_CHECK(MPI_Allgather(mine, kHostLen, MPI_CHAR, all.data(), kHostLen, MPI_CHAR, comm_));
    for (int r = 0; r < size; ++r) {
      const char* h = all.data() + static_cast<size_t>(r) * kHostLen;
      hosts_.emplace_back(h, strnlen(h, kHostLen));
    }
    host_ = host;
    LT_MPI_CHECK(MPI_Irecv(probe_in_, 2, MPI_INT, MPI_ANY_SOURCE, kProbeTag, comm_, &probe_req_));
    thread_ = std::thread([this] { run(); });
  }

  // Stops the thread, then withdraws what it has pending: before MPI_Finalize.
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    if (!MpiRuntime::active()) return;  // a host application finalized MPI already
    if (probe_req_ != MPI_REQUEST_NULL) {
      (void)MPI_Cancel(&probe_req_);
      (void)MPI_Wait(&probe_req_, MPI_STATUS_IGNORE);
    }
    // Answers not yet delivered (their prober is gone or slow): give them a
    // second, then let MPI finish them on its own.
    for (int i = 0; i < 50 && !pending_.empty(); ++i) {
      reap_sends();
      if (!pending_.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    for (Pending& p : pending_) (void)MPI_Request_free(&p.req);
    pending_.clear();
    (void)MPI_Comm_free(&comm_);
  }

 private:
  static constexpr int kHostLen = 64;
  static constexpr int kProbeTag = 1;
  static constexpr int kReplyTagBase = 2;
  static constexpr double kAnswerWaitS = 5;
  static constexpr double kDeferS = 15;

  // A message in flight from this thread and the buffer it reads.
  struct Pending {
    watchdog::RankState state;
    int probe[2] = {0, 0};
    MPI_Request req = MPI_REQUEST_NULL;
  };

  void run() {
    double next_check = watchdog::now_s() + 1;
    double snooze_until = 0;
    while (true) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        if (cv_.wait_for(lock, std::chrono::milliseconds(100), [this] { return stop_; })) return;
      }
      if (!serve()) return;
      const double now = watchdog::now_s();
      if (now < next_check) continue;
      next_check = now + 1;
      watchdog::Wait stuck;
      if (now >= snooze_until && watchdog::find_overdue(now, &stuck)) {
        const double more = investigate(stuck);
        if (more < 0) return;  // the MPI calls of the probe failed: stop watching
        snooze_until = watchdog::now_s() + more;
      }
    }
  }

  // Answers every probe that has arrived; false when MPI fails (stop watching).
  bool serve() {
    while (probe_req_ != MPI_REQUEST_NULL) {
      int done = 0;
      MPI_Status status;
      if (MPI_Test(&probe_req_, &done, &status) != MPI_SUCCESS) return false;
      if (!done) break;
      pending_.emplace_back();
      Pending& p = pending_.back();
      p.state = watchdog::local_state(rank_, watchdog::now_s());
      if (MPI_Isend(&p.state, sizeof p.state, MPI_BYTE, status.MPI_SOURCE, probe_in_[1], comm_, &p.req) !=
          MPI_SUCCESS)
        return false;
      if (MPI_Irecv(probe_in_, 2, MPI_INT, MPI_ANY_SOURCE, kProbeTag, comm_, &probe_req_) != MPI_SUCCESS) return false;
    }
    reap_sends();
    return true;
  }

  void reap_sends() {
    for (auto it = pending_.begin(); it != pending_.end();) {
      int done = 0;
      if (MPI_Test(&it->req, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS || done) it = pending_.erase(it);
      else ++it;
    }
  }

  // Probes every rank about the overdue wait `stuck`. Aborts the job, or
  // returns the seconds to wait before looking again (an allowance of another
  // rank); -1 when MPI itself fails.
  double investigate(const watchdog::Wait& stuck) {
    const double limit_s = watchdog::timeout() + watchdog::allowance_s();
    const int tag = kReplyTagBase + (round_++ % 30000);
    std::vector<watchdog::RankState> states(static_cast<size_t>(size_));
    std::vector<MPI_Request> replies(static_cast<size_t>(size_), MPI_REQUEST_NULL);
    for (int r = 0; r < size_; ++r) {
      states[static_cast<size_t>(r)].rank = r;
      if (r == rank_) continue;
      if (MPI_Irecv(&states[static_cast<size_t>(r)], sizeof(watchdog::RankState), MPI_BYTE, r, tag, comm_,
                    &replies[static_cast<size_t>(r)]) != MPI_SUCCESS)
        return -1;
      pending_.emplace_back();
      Pending& p = pending_.back();
      p.probe[0] = rank_;
      p.probe[1] = tag;
      if (MPI_Isend(p.probe, 2, MPI_INT, r, kProbeTag, comm_, &p.req) != MPI_SUCCESS) return -1;
    }
    const double deadline = watchdog::now_s() + kAnswerWaitS;
    int outstanding = size_ - 1;
    while (outstanding > 0 && watchdog::now_s() < deadline) {
      for (int r = 0; r < size_; ++r) {
        MPI_Request& q = replies[static_cast<size_t>(r)];
        if (q == MPI_REQUEST_NULL) continue;
        int done = 0;
        if (MPI_Test(&q, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS) return -1;
        if (done) {
          states[static_cast<size_t>(r)].rank = r;
          states[static_cast<size_t>(r)].answered = 1;
          --outstanding;
        }
      }
      if (!serve()) return -1;
      if (outstanding > 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    const double now = watchdog::now_s();
    states[static_cast<size_t>(rank_)] = watchdog::local_state(rank_, now);
    // Our own wait may have completed meanwhile (the job was just slow).
    watchdog::Wait again;
    const bool still = watchdog::find_overdue(now, &again);
    double lent = 0;
    bool lower_reports = false;
    for (const watchdog::RankState& s : states) {
      if (!s.answered || s.rank == rank_) continue;
      lent = std::max(lent, s.allowance_left_s);
      lower_reports |= s.overdue && s.rank < rank_;
    }
    if (!still || (outstanding == 0 && lent > 0)) {
      // Progress after all, or a rank saving a checkpoint: withdraw the
      // receives of late answers (their buffers end here) and look again later.
      for (MPI_Request& q : replies)
        if (q != MPI_REQUEST_NULL) {
          (void)MPI_Cancel(&q);
          (void)MPI_Wait(&q, MPI_STATUS_IGNORE);
        }
      return std::max(1.0, lent);
    }
    // Unanswered probes stay posted: the job ends now.
    const std::string msg =
        watchdog::timeout_message(stuck, limit_s, watchdog::timeout(), watchdog::step(), states, hosts_);
    if (lower_reports) {
      // A lower rank reports the same stall and aborts the job; if it does not
      // within kDeferS, this rank does.
      const double until = now + kDeferS;
      while (watchdog::now_s() < until) {
        if (!serve()) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    }
    std::fprintf(stderr, "lintrain: error (rank %d on %s): %s\n", rank_, host_.c_str(), msg.c_str());
    std::fflush(stderr);
    (void)MPI_Abort(MPI_COMM_WORLD, 1);
    std::_Exit(1);
  }

  int rank_, size_;
  std::string host_;
  std::vector<std::string> hosts_;
  MPI_Comm comm_ = MPI_COMM_NULL;
  int probe_in_[2] = {0, 0};  // a probe: the prober's rank and the tag to answer with
  MPI_Request probe_req_ = MPI_REQUEST_NULL;
  std::list<Pending> pending_;  // stable addresses: MPI reads them until done
  int round_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

void throw_mpi_error(int rc, const char* call, const char* file, int line) {
  char msg[MPI_MAX_ERROR_STRING] = {};
  int len = 0;
  if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) std::snprintf(msg, sizeof(msg), "error code %d", rc);
  throw_call_error("mpi", call, file, line, msg);
}

// ---- MpiRuntime ------------------------------------------------------------------

MpiRuntime::MpiRuntime(int* argc, char*** argv) : host_(host_name()) {
  int initialized = 0, finalized = 0;
  LT_MPI_CHECK(MPI_Initialized(&initialized));
  LT_MPI_CHECK(MPI_Finalized(&finalized));
  if (finalized)
    throw Error("[mpi] MPI was already finalized in this process; create one MpiRuntime for the whole run");
  if (initialized) {
    LT_MPI_CHECK(MPI_Query_thread(&thread_level_));
  } else {
    LT_MPI_CHECK(MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &thread_level_));
    owns_ = true;
  }
  if (thread_level_ < MPI_THREAD_MULTIPLE) {
    if (owns_) MPI_Finalize();
    throw Error(str_cat("[mpi] the MPI library provides thread level ", thread_level_,
                        " but lintrain needs MPI_THREAD_MULTIPLE (", MPI_THREAD_MULTIPLE,
                        ": the gradient all-reduce runs on its own thread); use an MPI built with "
                        "thread support (Debian's OpenMPI is)"));
  }
  LT_MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
  LT_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank_));
  set_process_rank(rank_);  // every later error message names it
  LT_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size_));
  MPI_Comm node = MPI_COMM_NULL;
  LT_MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node));
  LT_MPI_CHECK(MPI_Comm_rank(node, &local_rank_));
  LT_MPI_CHECK(MPI_Comm_size(node, &local_size_));
  LT_MPI_CHECK(MPI_Comm_free(&node));
  if (size_ > 1) watchdog_ = std::make_unique<Watchdog>(rank_, size_, host_);
}

MpiRuntime::~MpiRuntime() {
  watchdog_.reset();  // its thread stops and withdraws its requests while MPI still runs
  if (owns_ && active()) {
    free_bf16_sum_op();
    (void)MPI_Finalize();
  }
}

std::unique_ptr<Communicator> MpiRuntime::world() const {
  MPI_Comm dup = MPI_COMM_NULL;
  {
    const watchdog::WaitScope watched("communicator setup", watchdog::register_group(world_group_description(size_)));
    LT_MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &dup));
  }
  return std::make_unique<MpiCommunicator>(dup, /*owned=*/true);
}

void MpiRuntime::abort(int code) noexcept {
  if (active()) (void)MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

bool MpiRuntime::active() noexcept {
  int initialized = 0, finalized = 0;
  (void)MPI_Initialized(&initialized);
  (void)MPI_Finalized(&finalized);
  return initialized && !finalized;
}

// ---- MpiCommunicator -------------------------------------------------------------

MpiCommunicator::MpiCommunicator(MPI_Comm comm, bool owned) : comm_(comm), owned_(owned) {
  LT_CHECK(comm != MPI_COMM_NULL, "[mpi] MpiCommunicator needs a communicator, got MPI_COMM_NULL");
  LT_MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
  LT_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
  LT_MPI_CHECK(MPI_Comm_size(comm_, &size_));
  group_ = watchdog::register_group(describe_group(comm_, size_));
}

MpiCommunicator::~MpiCommunicator() {
  if (owned_ && MpiRuntime::active()) (void)MPI_Comm_free(&comm_);
}

Request MpiCommunicator::start_all_gather(const void* send, void* recv, size_t count, DType dtype) {
  const int n = as_count(count, "all_gather");
  const size_t mine = static_cast<size_t>(rank_) * count * dtype_size(dtype);
  const void* sendbuf = send == static_cast<const unsigned char*>(recv) + mine ? MPI_IN_PLACE : send;
  const MPI_Datatype type = mpi_datatype(dtype);
  std::vector<MPI_Request> reqs(1);
  LT_MPI_CHECK(MPI_Iallgather(sendbuf, n, type, recv, n, type, comm_, &reqs[0]));
  return std::make_unique<MpiRequest>(std::move(reqs), "all_gather", group_);
}

Request MpiCommunicator::start_all_reduce(void* buf, size_t count, DType dtype) {
  const MPI_Datatype type = mpi_datatype(dtype);
  const MPI_Op op = mpi_sum(dtype);
  auto* p = static_cast<unsigned char*>(buf);
  std::vector<MPI_Request> reqs;
  for (size_t done = 0; done < count || reqs.empty(); done += kMaxMpiCount) {
    const int n = static_cast<int>(std::min(kMaxMpiCount, count - done));
    reqs.emplace_back();
    LT_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, p + done * dtype_size(dtype), n, type, op, comm_, &reqs.back()));
  }
  return std::make_unique<MpiRequest>(std::move(reqs), "all_reduce", group_);
}

Request MpiCommunicator::start_reduce_scatter(const void* send, void* recv, size_t count, DType dtype) {
  const int n = as_count(count, "reduce_scatter");
  const void* sendbuf = send == recv ? MPI_IN_PLACE : send;
  std::vector<MPI_Request> reqs(1);
  LT_MPI_CHECK(
      MPI_Ireduce_scatter_block(sendbuf, recv, n, mpi_datatype(dtype), mpi_sum(dtype), comm_, &reqs[0]));
  return std::make_unique<MpiRequest>(std::move(reqs), "reduce_scatter", group_);
}

void MpiCommunicator::all_reduce_f64(double* buf, size_t count) {
  const watchdog::WaitScope watched("all_reduce", group_);
  for (size_t done = 0; done < count; done += kMaxMpiCount) {
    const int n = static_cast<int>(std::min(kMaxMpiCount, count - done));
    LT_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, buf + done, n, MPI_DOUBLE, MPI_SUM, comm_));
  }
}

void MpiCommunicator::broadcast(void* buf, size_t bytes, int root) {
  LT_CHECK(root >= 0 && root < size_, "[mpi] broadcast root ", root, " is not a rank of a group of ", size_);
  stats_.broadcast_bytes += bytes;
  stats_.broadcast_calls += 1;
  auto* p = static_cast<unsigned char*>(buf);
  const watchdog::WaitScope watched("broadcast", group_);
  for (size_t done = 0; done < bytes; done += kMaxMpiCount) {
    const int n = static_cast<int>(std::min(kMaxMpiCount, bytes - done));
    LT_MPI_CHECK(MPI_Bcast(p + done, n, MPI_BYTE, root, comm_));
  }
}

void MpiCommunicator::barrier() {
  const watchdog::WaitScope watched("barrier", group_);
  LT_MPI_CHECK(MPI_Barrier(comm_));
}

std::unique_ptr<Communicator> MpiCommunicator::split(int color, int key) {
  MPI_Comm sub = MPI_COMM_NULL;
  const watchdog::WaitScope watched("split", group_);
  LT_MPI_CHECK(MPI_Comm_split(comm_, color < 0 ? MPI_UNDEFINED : color, key, &sub));
  if (sub == MPI_COMM_NULL) return nullptr;
  return std::make_unique<MpiCommunicator>(sub, /*owned=*/true);
}

}  // namespace lintrain
