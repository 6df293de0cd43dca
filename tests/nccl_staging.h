// Runs host-buffer checks (tests/comm_conformance.h) on an NCCL communicator:
// wraps it as a Communicator whose float collectives copy host data to device
// buffers, run the NCCL collective there, and copy the result back. In-place
// calls stay in place on the device, so NCCL's in-place paths are exercised.
#pragma once

#include <memory>
#include <vector>

#include "parallel/communicator.h"
#include "runtime/device.h"

namespace lintrain::nccl_staging {

class DeviceFloats {
 public:
  explicit DeviceFloats(size_t n) : n_(n), p_(static_cast<float*>(cuda_malloc_zeroed(n * sizeof(float)))) {}
  ~DeviceFloats() { cuda_free(p_); }
  DeviceFloats(const DeviceFloats&) = delete;
  DeviceFloats& operator=(const DeviceFloats&) = delete;
  float* get() const { return p_; }
  void upload(const float* host) {
    if (n_) cuda_copy_to_device(p_, host, n_ * sizeof(float));
  }
  void download(float* host) const {
    if (n_) cuda_copy_to_host(host, p_, n_ * sizeof(float));
  }

 private:
  size_t n_;
  float* p_;
};

class Done : public CommRequest {
 public:
  void wait() override {}
};

class StagingCommunicator : public Communicator {
 public:
  explicit StagingCommunicator(std::unique_ptr<Communicator> inner) : inner_(std::move(inner)) {}
  int rank() const override { return inner_->rank(); }
  int size() const override { return inner_->size(); }
  std::string name() const override { return inner_->name(); }
  Device device() const override { return Device::CPU; }  // host buffers, staged to the device

  Request iall_gather(const float* send, float* recv, size_t count) override {
    const size_t total = static_cast<size_t>(size()) * count, mine = static_cast<size_t>(rank()) * count;
    DeviceFloats d_recv(total);
    if (send == recv + mine) {
      d_recv.upload(recv);
      inner_->all_gather(d_recv.get() + mine, d_recv.get(), count);
    } else {
      DeviceFloats d_send(count);
      d_send.upload(send);
      inner_->all_gather(d_send.get(), d_recv.get(), count);
    }
    d_recv.download(recv);
    return sync();
  }
  Request iall_reduce(float* buf, size_t count) override {
    DeviceFloats d(count);
    d.upload(buf);
    inner_->all_reduce(d.get(), count);
    d.download(buf);
    return sync();
  }
  Request ireduce_scatter(const float* send, float* recv, size_t count) override {
    const size_t total = static_cast<size_t>(size()) * count;
    DeviceFloats d_send(total);
    d_send.upload(send);
    if (send == recv) {
      inner_->reduce_scatter(d_send.get(), d_send.get(), count);
      std::vector<float> all(total);
      d_send.download(all.data());
      std::copy(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(count), recv);
    } else {
      DeviceFloats d_recv(count);
      inner_->reduce_scatter(d_send.get(), d_recv.get(), count);
      d_recv.download(recv);
    }
    return sync();
  }
  void all_reduce_f64(double* buf, size_t count) override { inner_->all_reduce_f64(buf, count); }
  void broadcast(void* buf, size_t bytes, int root) override {
    inner_->broadcast(buf, bytes, root);
    stats_ = inner_->stats();
  }
  void barrier() override { inner_->barrier(); }
  std::unique_ptr<Communicator> split(int color, int key) override {
    auto sub = inner_->split(color, key);
    if (!sub) return nullptr;
    return std::make_unique<StagingCommunicator>(std::move(sub));
  }

 private:
  Request sync() {
    stats_ = inner_->stats();
    return std::make_unique<Done>();
  }
  std::unique_ptr<Communicator> inner_;
};

}  // namespace lintrain::nccl_staging
