// The staged communicator (see staged_communicator.h): device buffers copied
// through reusable host buffers to a host communicator's collectives.
#include "parallel/staged_communicator.h"

#include <exception>
#include <mutex>
#include <utility>
#include <vector>

#include "runtime/device.h"
#include "runtime/error.h"

namespace lintrain {

namespace {

// Host staging buffers of one communicator. A collective takes one for as
// long as it is in flight and gives it back; a buffer only grows. Shared with
// the Requests, which may outlive the communicator. The mutex is cheap
// insurance: the interface already keeps one thread at a time on it.
class StagingPool {
 public:
  std::vector<unsigned char> take(size_t bytes) {
    std::vector<unsigned char> buf;
    {
      std::lock_guard<std::mutex> lock(mu_);
      // The smallest free buffer that is big enough, else the largest (grown
      // below): the big buffers stay for the big collectives.
      size_t best = free_.size();
      for (size_t i = 0; i < free_.size(); ++i) {
        if (best == free_.size()) {
          best = i;
          continue;
        }
        const size_t have = free_[i].size(), best_have = free_[best].size();
        const bool fits = have >= bytes, best_fits = best_have >= bytes;
        if (fits ? (!best_fits || have < best_have) : (!best_fits && have > best_have)) best = i;
      }
      if (best < free_.size()) {
        buf = std::move(free_[best]);
        free_.erase(free_.begin() + static_cast<std::ptrdiff_t>(best));
      }
    }
    if (buf.size() < bytes) buf.resize(bytes);
    return buf;
  }
  void give(std::vector<unsigned char> buf) noexcept {
    std::lock_guard<std::mutex> lock(mu_);
    try {
      free_.push_back(std::move(buf));
    } catch (...) {
      // No room to keep it (out of memory): the buffer is freed instead.
    }
  }
  void reserve_slots(size_t n) {
    std::lock_guard<std::mutex> lock(mu_);
    free_.reserve(n);
  }

 private:
  std::mutex mu_;
  std::vector<std::vector<unsigned char>> free_;
};

// A host collective in flight on a staging buffer; once it completes, the
// first `bytes` of the buffer go back to `dst` on the device.
class StagedRequest : public CommRequest {
 public:
  StagedRequest(Request host, std::shared_ptr<StagingPool> pool, std::vector<unsigned char> stage, Device device,
                void* dst, size_t bytes)
      : pool_(std::move(pool)),
        stage_(std::move(stage)),
        host_(std::move(host)),
        device_(device),
        dst_(dst),
        bytes_(bytes) {}

  void wait() override {
    if (done_) return;
    done_ = true;
    struct GiveBack {  // the buffer returns to the pool even if a step throws
      StagedRequest& r;
      ~GiveBack() { r.pool_->give(std::move(r.stage_)); }
    } give_back{*this};
    host_->wait();
    if (bytes_) copy_from_host(device_, dst_, stage_.data(), bytes_);
  }

  ~StagedRequest() override {
    if (done_) return;
    if (std::uncaught_exceptions() > 0) {
      // Unwinding: leave it to the host request's destructor whether to wait
      // (a thread communicator must not block on ranks that may never come);
      // once it returns, nothing reads or writes the staging buffer.
      host_.reset();
      pool_->give(std::move(stage_));
      return;
    }
    try {
      wait();
    } catch (...) {
      // A destructor never throws; the host request has completed or failed.
    }
  }

 private:
  std::shared_ptr<StagingPool> pool_;
  std::vector<unsigned char> stage_;
  Request host_;  // after stage_: destroyed first, so never outlives the buffer it uses
  Device device_;
  void* dst_;
  size_t bytes_;
  bool done_ = false;
};

class StagedCommunicator final : public Communicator {
 public:
  StagedCommunicator(std::unique_ptr<Communicator> host, Device device)
      : host_(std::move(host)), device_(device), pool_(std::make_shared<StagingPool>()) {
    pool_->reserve_slots(8);
  }

  int rank() const override { return host_->rank(); }
  int size() const override { return host_->size(); }
  std::string name() const override { return host_->name() + "+staged"; }
  Device device() const override { return device_; }

  void all_reduce_f64(double* buf, size_t count) override { host_->all_reduce_f64(buf, count); }
  void broadcast(void* buf, size_t bytes, int root) override {
    host_->broadcast(buf, bytes, root);
    stats_.broadcast_bytes += bytes;
    stats_.broadcast_calls += 1;
  }
  void barrier() override { host_->barrier(); }
  std::unique_ptr<Communicator> split(int color, int key) override {
    std::unique_ptr<Communicator> sub = host_->split(color, key);
    if (!sub) return nullptr;
    return std::make_unique<StagedCommunicator>(std::move(sub), device_);
  }

 protected:
  // Each stages through one buffer with the host collective in place: this
  // rank's part downloaded to its slot of the gathered buffer; the summed
  // buffer itself; the whole reduce-scatter input, its result at the front.
  Request start_all_gather(const void* send, void* recv, size_t count, DType dtype) override {
    const size_t bytes = count * dtype_size(dtype), mine = static_cast<size_t>(rank()) * bytes;
    std::vector<unsigned char> stage = pool_->take(static_cast<size_t>(size()) * bytes);
    if (bytes) copy_to_host(device_, stage.data() + mine, send, bytes);
    unsigned char* s = stage.data();
    Request host = host_->iall_gather(s + mine, s, count, dtype);
    return finish(std::move(host), std::move(stage), recv, static_cast<size_t>(size()) * bytes);
  }

  Request start_all_reduce(void* buf, size_t count, DType dtype) override {
    const size_t bytes = count * dtype_size(dtype);
    std::vector<unsigned char> stage = pool_->take(bytes);
    if (bytes) copy_to_host(device_, stage.data(), buf, bytes);
    Request host = host_->iall_reduce(stage.data(), count, dtype);
    return finish(std::move(host), std::move(stage), buf, bytes);
  }

  Request start_reduce_scatter(const void* send, void* recv, size_t count, DType dtype) override {
    const size_t bytes = count * dtype_size(dtype), total = static_cast<size_t>(size()) * bytes;
    std::vector<unsigned char> stage = pool_->take(total);
    if (total) copy_to_host(device_, stage.data(), send, total);
    Request host = host_->ireduce_scatter(stage.data(), stage.data(), count, dtype);
    return finish(std::move(host), std::move(stage), recv, bytes);
  }

 private:
  // Moving a vector leaves its heap storage where it is, so the pointers the
  // host collective holds stay valid once the buffer is inside the Request.
  Request finish(Request host, std::vector<unsigned char> stage, void* dst, size_t bytes) {
    return std::make_unique<StagedRequest>(std::move(host), pool_, std::move(stage), device_, dst, bytes);
  }

  std::unique_ptr<Communicator> host_;
  Device device_;
  std::shared_ptr<StagingPool> pool_;
};

}  // namespace

std::unique_ptr<Communicator> make_staged_communicator(std::unique_ptr<Communicator> host, Device device) {
  LT_CHECK(host != nullptr, "[staged comm] needs a host communicator, got none");
  LT_CHECK(host->device() == Device::CPU, "[staged comm] the host communicator '", host->name(),
           "' takes buffers on ", device_name(host->device()), "; staging needs one of host buffers");
  return std::make_unique<StagedCommunicator>(std::move(host), device);
}

}  // namespace lintrain
