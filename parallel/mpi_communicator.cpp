// MpiRuntime and MpiCommunicator (see mpi_communicator.h).
#include "parallel/mpi_communicator.h"

#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "runtime/error.h"

namespace lintrain {

namespace {

std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "?";
  return buf;
}

// Largest element count handed to one MPI call (MPI counts are int).
constexpr size_t kMaxMpiCount = static_cast<size_t>(INT_MAX);

int as_count(size_t n, const char* op) {
  LT_CHECK(n <= kMaxMpiCount, "[mpi] ", op, " of ", n, " elements per rank exceeds MPI's int count (", INT_MAX,
           "); split the buffer");
  return static_cast<int>(n);
}

// One or more MPI requests completed together.
class MpiRequest : public CommRequest {
 public:
  explicit MpiRequest(std::vector<MPI_Request> reqs) : reqs_(std::move(reqs)) {}

  void wait() override {
    if (reqs_.empty()) return;
    std::vector<MPI_Request> reqs = std::move(reqs_);
    reqs_.clear();
    LT_MPI_CHECK(MPI_Waitall(static_cast<int>(reqs.size()), reqs.data(), MPI_STATUSES_IGNORE));
  }

  ~MpiRequest() override {
    // Never leave MPI writing into a buffer the caller is about to free; errors
    // here have nowhere to go (a destructor never throws).
    if (!reqs_.empty() && MpiRuntime::active())
      (void)MPI_Waitall(static_cast<int>(reqs_.size()), reqs_.data(), MPI_STATUSES_IGNORE);
  }

 private:
  std::vector<MPI_Request> reqs_;
};

}  // namespace

std::string rank_and_host() {
  std::string rank = "?";
  if (MpiRuntime::active()) {
    int r = -1;
    if (MPI_Comm_rank(MPI_COMM_WORLD, &r) == MPI_SUCCESS) rank = std::to_string(r);
  }
  return str_cat("rank ", rank, " (host ", host_name(), ")");
}

void throw_mpi_error(int rc, const char* call, const char* file, int line) {
  char msg[MPI_MAX_ERROR_STRING] = {};
  int len = 0;
  if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) std::snprintf(msg, sizeof(msg), "error code %d", rc);
  throw Error(str_cat("[mpi] ", call, " failed at ", file, ":", line, " on ", rank_and_host(), ": ", msg));
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
  LT_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size_));
  MPI_Comm node = MPI_COMM_NULL;
  LT_MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node));
  LT_MPI_CHECK(MPI_Comm_rank(node, &local_rank_));
  LT_MPI_CHECK(MPI_Comm_size(node, &local_size_));
  LT_MPI_CHECK(MPI_Comm_free(&node));
}

MpiRuntime::~MpiRuntime() {
  if (owns_ && active()) (void)MPI_Finalize();
}

std::unique_ptr<Communicator> MpiRuntime::world() const {
  MPI_Comm dup = MPI_COMM_NULL;
  LT_MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &dup));
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
}

MpiCommunicator::~MpiCommunicator() {
  if (owned_ && MpiRuntime::active()) (void)MPI_Comm_free(&comm_);
}

Request MpiCommunicator::iall_gather(const float* send, float* recv, size_t count) {
  const int n = as_count(count, "all_gather");
  stats_.all_gather_bytes += count * sizeof(float);
  stats_.all_gather_calls += 1;
  const void* sendbuf = send == recv + static_cast<size_t>(rank_) * count ? MPI_IN_PLACE : send;
  std::vector<MPI_Request> reqs(1);
  LT_MPI_CHECK(MPI_Iallgather(sendbuf, n, MPI_FLOAT, recv, n, MPI_FLOAT, comm_, &reqs[0]));
  return std::make_unique<MpiRequest>(std::move(reqs));
}

Request MpiCommunicator::iall_reduce(float* buf, size_t count) {
  stats_.all_reduce_bytes += count * sizeof(float);
  stats_.all_reduce_calls += 1;
  std::vector<MPI_Request> reqs;
  for (size_t done = 0; done < count || reqs.empty(); done += kMaxMpiCount) {
    const int n = static_cast<int>(std::min(kMaxMpiCount, count - done));
    reqs.emplace_back();
    LT_MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, buf + done, n, MPI_FLOAT, MPI_SUM, comm_, &reqs.back()));
  }
  return std::make_unique<MpiRequest>(std::move(reqs));
}

Request MpiCommunicator::ireduce_scatter(const float* send, float* recv, size_t count) {
  const int n = as_count(count, "reduce_scatter");
  stats_.reduce_scatter_bytes += static_cast<size_t>(size_) * count * sizeof(float);
  stats_.reduce_scatter_calls += 1;
  const void* sendbuf = send == recv ? MPI_IN_PLACE : send;
  std::vector<MPI_Request> reqs(1);
  LT_MPI_CHECK(MPI_Ireduce_scatter_block(sendbuf, recv, n, MPI_FLOAT, MPI_SUM, comm_, &reqs[0]));
  return std::make_unique<MpiRequest>(std::move(reqs));
}

void MpiCommunicator::all_reduce_f64(double* buf, size_t count) {
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
  for (size_t done = 0; done < bytes; done += kMaxMpiCount) {
    const int n = static_cast<int>(std::min(kMaxMpiCount, bytes - done));
    LT_MPI_CHECK(MPI_Bcast(p + done, n, MPI_BYTE, root, comm_));
  }
}

void MpiCommunicator::barrier() { LT_MPI_CHECK(MPI_Barrier(comm_)); }

std::unique_ptr<Communicator> MpiCommunicator::split(int color, int key) {
  MPI_Comm sub = MPI_COMM_NULL;
  LT_MPI_CHECK(MPI_Comm_split(comm_, color < 0 ? MPI_UNDEFINED : color, key, &sub));
  if (sub == MPI_COMM_NULL) return nullptr;
  return std::make_unique<MpiCommunicator>(sub, /*owned=*/true);
}

}  // namespace lintrain
