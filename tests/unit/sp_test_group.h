// Test-only: W ranks as W std::threads in one process, each with a
// Communicator over a shared rendezvous, so the LASP-2 layer cores can be run
// exactly as SP ranks run them. Deliberately small and slow-but-obvious:
//   - i-collectives only record the send/recv pointers; the data moves in
//     wait(), after a barrier (every rank has posted) and before a second one
//     (nobody reuses a send buffer while a peer still reads it). So a core that
//     reads its receive buffer before wait(), or writes its send buffer while
//     a collective is in flight, gets wrong numbers in the tests.
//   - sums run over ranks 0..W-1 in order, in float: deterministic.
//   - bytes are counted as the interface says: the send-buffer size
//     (reduce-scatter: W * count floats).
// If one rank throws, the others are released from their barriers with an
// exception, so a failing test fails instead of hanging.
#pragma once

#include <condition_variable>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "parallel/communicator.h"
#include "runtime/error.h"

namespace lintrain::test {

class SpTestGroup {
 public:
  explicit SpTestGroup(int W) : W_(W), slots_(W) {}

  // Runs f(comm, rank) on W threads; rethrows the first exception.
  static void run(int W, const std::function<void(Communicator&, int)>& f) {
    SpTestGroup group(W);
    std::vector<std::exception_ptr> errors(W);
    std::vector<std::thread> threads;
    for (int r = 0; r < W; ++r)
      threads.emplace_back([&, r] {
        try {
          Comm comm(&group, r);
          f(comm, r);
        } catch (...) {
          errors[r] = std::current_exception();
          group.abort();
        }
      });
    for (auto& t : threads) t.join();
    for (auto& e : errors)
      if (e) std::rethrow_exception(e);
  }

 private:
  enum class Kind { all_gather, all_reduce, reduce_scatter };
  struct Slot {
    Kind kind;
    const float* send;
    float* recv;
    size_t count;
  };

  void barrier() {
    std::unique_lock<std::mutex> lock(mu_);
    if (aborted_) throw Error("[SpTestGroup] another rank failed");
    const uint64_t gen = generation_;
    if (++arrived_ == W_) {
      arrived_ = 0;
      ++generation_;
      cv_.notify_all();
      return;
    }
    cv_.wait(lock, [&] { return generation_ != gen || aborted_; });
    if (generation_ == gen) throw Error("[SpTestGroup] another rank failed");
  }
  void abort() {
    std::lock_guard<std::mutex> lock(mu_);
    aborted_ = true;
    cv_.notify_all();
  }

  // The data movement of rank r's pending collective; all ranks have posted.
  void complete(int r) {
    const Slot& me = slots_[r];
    for (const Slot& s : slots_)
      LT_CHECK(s.kind == me.kind && s.count == me.count, "[SpTestGroup] ranks disagree on a collective");
    const size_t n = me.count;
    if (me.kind == Kind::all_gather) {
      for (int u = 0; u < W_; ++u) std::memcpy(me.recv + u * n, slots_[u].send, n * sizeof(float));
    } else {
      const size_t off = me.kind == Kind::reduce_scatter ? r * n : 0;
      std::vector<float> sum(n, 0.0f);
      for (int u = 0; u < W_; ++u)
        for (size_t i = 0; i < n; ++i) sum[i] += slots_[u].send[off + i];
      barrier();  // all_reduce is in place: everyone reads before anyone writes
      std::memcpy(me.recv, sum.data(), n * sizeof(float));
    }
  }

  class Pending : public CommRequest {
   public:
    Pending(SpTestGroup* g, int r) : g_(g), r_(r) {}
    ~Pending() override {
      try {
        wait();
      } catch (...) {
      }
    }
    void wait() override {
      if (done_) return;
      done_ = true;
      g_->barrier();
      g_->complete(r_);
      g_->barrier();
    }

   private:
    SpTestGroup* g_;
    int r_;
    bool done_ = false;
  };

  class Comm : public Communicator {
   public:
    Comm(SpTestGroup* g, int r) : g_(g), r_(r) {}
    int rank() const override { return r_; }
    int size() const override { return g_->W_; }
    std::string name() const override { return "sp-test-threads"; }
    Device device() const override { return Device::CPU; }
    void all_reduce_f64(double*, size_t) override { throw Error("[SpTestGroup] all_reduce_f64 unused"); }
    void broadcast(void*, size_t, int) override { throw Error("[SpTestGroup] broadcast unused"); }
    void barrier() override { g_->barrier(); }
    std::unique_ptr<Communicator> split(int, int) override { throw Error("[SpTestGroup] split unused"); }

   protected:
    // Communicator counts the bytes; the layers move floats only.
    Request start_all_gather(const void* send, void* recv, size_t count, DType dtype) override {
      return post(Kind::all_gather, floats(send, dtype), floats(recv, dtype), count);
    }
    Request start_all_reduce(void* buf, size_t count, DType dtype) override {
      return post(Kind::all_reduce, floats(buf, dtype), floats(buf, dtype), count);
    }
    Request start_reduce_scatter(const void* send, void* recv, size_t count, DType dtype) override {
      return post(Kind::reduce_scatter, floats(send, dtype), floats(recv, dtype), count);
    }

   private:
    static float* floats(const void* p, DType dtype) {
      if (dtype != DType::F32) throw Error("[SpTestGroup] only f32 collectives are used");
      return static_cast<float*>(const_cast<void*>(p));
    }
    Request post(Kind kind, const float* send, float* recv, size_t count) {
      g_->slots_[r_] = Slot{kind, send, recv, count};
      return std::make_unique<Pending>(g_, r_);
    }
    SpTestGroup* g_;
    int r_;
  };

  int W_;
  std::vector<Slot> slots_;
  std::mutex mu_;
  std::condition_variable cv_;
  int arrived_ = 0;
  uint64_t generation_ = 0;
  bool aborted_ = false;
};

}  // namespace lintrain::test
