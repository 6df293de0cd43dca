// In-process communicator: see thread_communicator.h for the semantics. One
// mutex and condition variable per world guard every group's table of
// collectives in flight; the arithmetic runs outside the lock.
#include "parallel/thread_communicator.h"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <map>
#include <mutex>
#include <thread>
#include <tuple>

#include "runtime/error.h"

namespace lintrain {

namespace {

enum class OpKind { AllGather, AllReduce, ReduceScatter, AllReduceF64, Broadcast, Barrier, Split };

const char* op_name(OpKind k) {
  switch (k) {
    case OpKind::AllGather: return "all_gather";
    case OpKind::AllReduce: return "all_reduce";
    case OpKind::ReduceScatter: return "reduce_scatter";
    case OpKind::AllReduceF64: return "all_reduce_f64";
    case OpKind::Broadcast: return "broadcast";
    case OpKind::Barrier: return "barrier";
    case OpKind::Split: return "split";
  }
  return "?";
}

// Thrown by ranks that stop because another rank failed; run_ranks prefers
// to rethrow the failure that caused the abort.
class AbortedError : public Error {
 public:
  using Error::Error;
};

// Everything split from one make_thread_communicators call.
struct World {
  explicit World(int size) : exited(static_cast<size_t>(size), false) {}
  std::mutex mu;
  std::condition_variable cv;
  std::string abort_reason;  // non-empty once aborted
  std::vector<bool> exited;  // by world rank: its run_ranks function returned
};

struct Group;

struct SplitArgs {
  int color, key;
};

// One collective in flight. Written under World::mu, except the result
// buffers: written by the last poster before `computed`, read-only after.
struct Op {
  uint64_t seq = 0;
  OpKind kind = OpKind::Barrier;
  size_t count = 0;  // elements (bytes for broadcast)
  DType dtype = DType::F32;  // of the buffer collectives' elements
  int root = 0;
  std::vector<const void*> send;  // by group rank
  std::vector<bool> posted_by;
  int posted = 0, collected = 0;
  bool computed = false;
  std::string failure;
  std::vector<float> f32;
  std::vector<double> f64;
  std::vector<uint16_t> bf16;
  std::vector<unsigned char> bytes;  // all_gather, broadcast
  std::vector<std::shared_ptr<Group>> new_group;  // split: by group rank
  std::vector<int> new_rank;
};

struct Group {
  std::shared_ptr<World> world;
  std::vector<int> world_ranks;  // group rank -> world rank
  std::map<uint64_t, std::shared_ptr<Op>> in_flight;
  int size() const { return static_cast<int>(world_ranks.size()); }
};

void abort_world_locked(World& w, const std::string& reason) {
  if (w.abort_reason.empty()) w.abort_reason = reason;
  w.cv.notify_all();
}

// Why `op` can never complete, or "" while it still may.
std::string stuck_reason_locked(const Group& g, const Op& op) {
  if (op.posted == g.size()) return "";  // being computed
  if (!g.world->abort_reason.empty()) return str_cat("aborted: ", g.world->abort_reason);
  for (int r = 0; r < g.size(); ++r) {
    const int wr = g.world_ranks[static_cast<size_t>(r)];
    if (!op.posted_by[static_cast<size_t>(r)] && g.world->exited[static_cast<size_t>(wr)])
      return str_cat("world rank ", wr, " returned without calling it");
  }
  return "";
}

template <typename T>
void sum_in_rank_order(const Op& op, size_t n, std::vector<T>& out) {
  const T* first = static_cast<const T*>(op.send[0]);
  out.assign(first, first + n);
  for (size_t r = 1; r < op.send.size(); ++r) {
    const T* x = static_cast<const T*>(op.send[r]);
    for (size_t i = 0; i < n; ++i) out[i] += x[i];
  }
}

// bf16 as NCCL sums it: each step adds in f32 and rounds to bf16.
void sum_bf16_in_rank_order(const Op& op, size_t n, std::vector<uint16_t>& out) {
  const auto* first = static_cast<const uint16_t*>(op.send[0]);
  out.assign(first, first + n);
  for (size_t r = 1; r < op.send.size(); ++r) {
    const auto* x = static_cast<const uint16_t*>(op.send[r]);
    for (size_t i = 0; i < n; ++i) out[i] = f32_to_bf16(bf16_to_f32(out[i]) + bf16_to_f32(x[i]));
  }
}

// n elements of op.dtype summed over the ranks into the result buffer of that dtype.
void sum(Op& op, size_t n) {
  switch (op.dtype) {
    case DType::F32: sum_in_rank_order(op, n, op.f32); return;
    case DType::F64: sum_in_rank_order(op, n, op.f64); return;
    case DType::BF16: sum_bf16_in_rank_order(op, n, op.bf16); return;
    default: break;  // refused by Communicator before it gets here
  }
  throw Error(str_cat("[thread comm] ", op_name(op.kind), " of ", dtype_name(op.dtype), " is not supported"));
}

// The summed result of an all_reduce or reduce_scatter, as bytes.
const unsigned char* sum_result(const Op& op) {
  switch (op.dtype) {
    case DType::F64: return reinterpret_cast<const unsigned char*>(op.f64.data());
    case DType::BF16: return reinterpret_cast<const unsigned char*>(op.bf16.data());
    default: return reinterpret_cast<const unsigned char*>(op.f32.data());
  }
}

void compute(Op& op, const Group& g) {
  const size_t W = static_cast<size_t>(g.size()), n = op.count;
  switch (op.kind) {
    case OpKind::AllGather: {
      const size_t bytes = n * dtype_size(op.dtype);
      op.bytes.resize(W * bytes);
      for (size_t r = 0; r < W; ++r)
        if (bytes) std::memcpy(op.bytes.data() + r * bytes, op.send[r], bytes);
      break;
    }
    case OpKind::AllReduce: sum(op, n); break;
    case OpKind::ReduceScatter: sum(op, W * n); break;
    case OpKind::AllReduceF64: sum_in_rank_order(op, n, op.f64); break;
    case OpKind::Broadcast: {
      const auto* src = static_cast<const unsigned char*>(op.send[static_cast<size_t>(op.root)]);
      op.bytes.assign(src, src + n);
      break;
    }
    case OpKind::Barrier: break;
    case OpKind::Split: {
      std::map<int, std::vector<std::pair<int, int>>> members;  // color -> (key, rank)
      for (size_t r = 0; r < W; ++r) {
        const auto* a = static_cast<const SplitArgs*>(op.send[r]);
        if (a->color >= 0) members[a->color].emplace_back(a->key, static_cast<int>(r));
      }
      op.new_group.assign(W, nullptr);
      op.new_rank.assign(W, -1);
      for (auto& [color, m] : members) {
        std::sort(m.begin(), m.end());
        auto ng = std::make_shared<Group>();
        ng->world = g.world;
        for (size_t i = 0; i < m.size(); ++i) {
          const size_t r = static_cast<size_t>(m[i].second);
          ng->world_ranks.push_back(g.world_ranks[r]);
          op.new_group[r] = ng;
          op.new_rank[r] = static_cast<int>(i);
        }
      }
      break;
    }
  }
}

// Blocks until `op` is computed, then copies this rank's output out.
void collect(Group& g, Op& op, int rank, const std::function<void(const Op&)>& copy_out) {
  World& w = *g.world;
  {
    std::unique_lock<std::mutex> lk(w.mu);
    std::string why;
    w.cv.wait(lk, [&] {
      if (op.computed) return true;
      why = stuck_reason_locked(g, op);
      return !why.empty();
    });
    if (!op.computed)
      throw AbortedError(
          str_cat("[thread comm] rank ", rank, ": ", op_name(op.kind), " #", op.seq, " cannot complete: ", why));
    if (!op.failure.empty())
      throw AbortedError(str_cat("[thread comm] ", op_name(op.kind), " #", op.seq, " failed: ", op.failure));
  }
  if (copy_out) copy_out(op);
  std::lock_guard<std::mutex> lk(w.mu);
  if (++op.collected == g.size()) g.in_flight.erase(op.seq);
}

class ThreadRequest : public CommRequest {
 public:
  ThreadRequest(std::shared_ptr<Group> g, std::shared_ptr<Op> op, int rank, std::function<void(const Op&)> out)
      : group_(std::move(g)), op_(std::move(op)), rank_(rank), copy_out_(std::move(out)) {}

  void wait() override {
    if (done_) return;
    done_ = true;
    collect(*group_, *op_, rank_, copy_out_);
  }

  ~ThreadRequest() override {
    if (done_) return;
    try {
      if (std::uncaught_exceptions() > 0) {
        // Unwinding: other ranks may wait on this one, so do not block on them;
        // but never let a computation still read buffers this rank will free.
        World& w = *group_->world;
        std::unique_lock<std::mutex> lk(w.mu);
        if (op_->posted < group_->size()) {
          abort_world_locked(w, str_cat("rank ", rank_, " abandoned ", op_name(op_->kind), " #", op_->seq,
                                        " while an exception propagated"));
          return;
        }
        w.cv.wait(lk, [&] { return op_->computed; });
        return;
      }
      wait();
    } catch (...) {
      // A destructor never throws; the failure reached the ranks through the abort.
    }
  }

 private:
  std::shared_ptr<Group> group_;
  std::shared_ptr<Op> op_;
  int rank_;
  std::function<void(const Op&)> copy_out_;
  bool done_ = false;
};

class ThreadCommunicator final : public Communicator {
 public:
  ThreadCommunicator(std::shared_ptr<Group> g, int rank) : group_(std::move(g)), rank_(rank) {}

  int rank() const override { return rank_; }
  int size() const override { return group_->size(); }
  std::string name() const override { return "thread"; }
  Device device() const override { return Device::CPU; }
  const std::shared_ptr<World>& world() const { return group_->world; }

  void all_reduce_f64(double* buf, size_t count) override {
    start(OpKind::AllReduceF64, count, 0, buf, [buf, count](const Op& op) {
      if (count) std::memcpy(buf, op.f64.data(), count * sizeof(double));
    }, DType::F64)->wait();
  }

  void broadcast(void* buf, size_t bytes, int root) override {
    LT_CHECK(root >= 0 && root < size(), "[thread comm] broadcast root ", root, " is not a rank of a group of ",
             size());
    stats_.broadcast_bytes += bytes;
    stats_.broadcast_calls += 1;
    const bool is_root = rank_ == root;
    start(OpKind::Broadcast, bytes, root, buf, [buf, bytes, is_root](const Op& op) {
      if (!is_root && bytes) std::memcpy(buf, op.bytes.data(), bytes);
    })->wait();
  }

  void barrier() override { start(OpKind::Barrier, 0, 0, nullptr, nullptr)->wait(); }

  std::unique_ptr<Communicator> split(int color, int key) override {
    const SplitArgs args{color < 0 ? -1 : color, key};
    std::unique_ptr<Communicator> out;
    const size_t r = static_cast<size_t>(rank_);
    start(OpKind::Split, 0, 0, &args, [&out, r](const Op& op) {
      if (op.new_group[r]) out = std::make_unique<ThreadCommunicator>(op.new_group[r], op.new_rank[r]);
    })->wait();
    return out;
  }

 protected:
  Request start_all_gather(const void* send, void* recv, size_t count, DType dtype) override {
    const size_t total = static_cast<size_t>(size()) * count * dtype_size(dtype);
    return start(OpKind::AllGather, count, 0, send, [recv, total](const Op& op) {
      if (total) std::memcpy(recv, op.bytes.data(), total);
    }, dtype);
  }

  Request start_all_reduce(void* buf, size_t count, DType dtype) override {
    const size_t bytes = count * dtype_size(dtype);
    return start(OpKind::AllReduce, count, 0, buf, [buf, bytes](const Op& op) {
      if (bytes) std::memcpy(buf, sum_result(op), bytes);
    }, dtype);
  }

  Request start_reduce_scatter(const void* send, void* recv, size_t count, DType dtype) override {
    const size_t bytes = count * dtype_size(dtype), offset = static_cast<size_t>(rank_) * bytes;
    return start(OpKind::ReduceScatter, count, 0, send, [recv, bytes, offset](const Op& op) {
      if (bytes) std::memcpy(recv, sum_result(op) + offset, bytes);
    }, dtype);
  }

 private:
  // Posts this rank's part of the next collective; the last rank to post
  // computes the result.
  Request start(OpKind kind, size_t count, int root, const void* send, std::function<void(const Op&)> out,
                DType dtype = DType::F32) {
    World& w = *group_->world;
    const int W = size();
    const uint64_t seq = next_seq_++;
    std::shared_ptr<Op> op;
    bool last = false;
    {
      std::lock_guard<std::mutex> lk(w.mu);
      if (!w.abort_reason.empty())
        throw AbortedError(str_cat("[thread comm] rank ", rank_, ": ", op_name(kind), " #", seq,
                                   " not started: aborted: ", w.abort_reason));
      std::shared_ptr<Op>& slot = group_->in_flight[seq];
      if (!slot) {
        slot = std::make_shared<Op>();
        slot->seq = seq;
        slot->kind = kind;
        slot->count = count;
        slot->dtype = dtype;
        slot->root = root;
        slot->send.assign(static_cast<size_t>(W), nullptr);
        slot->posted_by.assign(static_cast<size_t>(W), false);
      } else if (slot->kind != kind || slot->count != count || slot->root != root || slot->dtype != dtype) {
        const std::string msg = str_cat("[thread comm] collective #", seq, " does not match across ranks: rank ",
                                        rank_, " called ", op_name(kind), "(count ", count, " ", dtype_name(dtype),
                                        ", root ", root, ") but another rank called ", op_name(slot->kind), "(count ",
                                        slot->count, " ", dtype_name(slot->dtype), ", root ", slot->root, ")");
        abort_world_locked(w, msg);
        throw Error(msg);
      }
      op = slot;
      op->send[static_cast<size_t>(rank_)] = send;
      op->posted_by[static_cast<size_t>(rank_)] = true;
      last = ++op->posted == W;
    }
    if (last) {
      std::string failure;
      try {
        compute(*op, *group_);
      } catch (const std::exception& e) {
        failure = e.what();
      }
      std::lock_guard<std::mutex> lk(w.mu);
      op->computed = true;
      op->failure = failure;
      if (!failure.empty()) abort_world_locked(w, failure);
      w.cv.notify_all();
    }
    return std::make_unique<ThreadRequest>(group_, std::move(op), rank_, std::move(out));
  }

  std::shared_ptr<Group> group_;
  int rank_;
  uint64_t next_seq_ = 0;
};

}  // namespace

std::vector<std::unique_ptr<Communicator>> make_thread_communicators(int world_size) {
  LT_CHECK(world_size >= 1, "[thread comm] world size must be at least 1, got ", world_size);
  auto g = std::make_shared<Group>();
  g->world = std::make_shared<World>(world_size);
  for (int r = 0; r < world_size; ++r) g->world_ranks.push_back(r);
  std::vector<std::unique_ptr<Communicator>> comms;
  for (int r = 0; r < world_size; ++r) comms.push_back(std::make_unique<ThreadCommunicator>(g, r));
  return comms;
}

void run_ranks(int world_size, const std::function<void(Communicator&)>& fn) {
  auto comms = make_thread_communicators(world_size);
  World& w = *static_cast<ThreadCommunicator&>(*comms[0]).world();
  std::exception_ptr first_failure, first_abort;
  std::vector<std::thread> threads;
  threads.reserve(static_cast<size_t>(world_size));
  for (int r = 0; r < world_size; ++r) {
    threads.emplace_back([&, r] {
      try {
        fn(*comms[static_cast<size_t>(r)]);
      } catch (const AbortedError& e) {
        std::lock_guard<std::mutex> lk(w.mu);
        if (!first_abort) first_abort = std::current_exception();
        abort_world_locked(w, e.what());
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> lk(w.mu);
        if (!first_failure) first_failure = std::current_exception();
        abort_world_locked(w, str_cat("rank ", r, " threw: ", e.what()));
      } catch (...) {
        std::lock_guard<std::mutex> lk(w.mu);
        if (!first_failure) first_failure = std::current_exception();
        abort_world_locked(w, str_cat("rank ", r, " threw a non-standard exception"));
      }
      std::lock_guard<std::mutex> lk(w.mu);
      w.exited[static_cast<size_t>(r)] = true;
      w.cv.notify_all();
    });
  }
  for (auto& t : threads) t.join();
  if (first_failure) std::rethrow_exception(first_failure);
  if (first_abort) std::rethrow_exception(first_abort);
}

}  // namespace lintrain
