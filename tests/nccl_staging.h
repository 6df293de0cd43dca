// Runs host-buffer checks (tests/comm_conformance.h) on an NCCL communicator:
// wraps it as a Communicator whose buffer collectives copy host data to device
// buffers, run the NCCL collective there (same dtype), and copy the result
// back. In-place calls stay in place on the device, so NCCL's in-place paths
// are exercised. (The other direction, device buffers over a host
// communicator, is parallel/staged_communicator.h.)
#pragma once

#include <algorithm>
#include <memory>
#include <vector>

#include "parallel/communicator.h"
#include "runtime/device.h"

namespace lintrain::nccl_staging {

// A device buffer of n bytes, freed with its owner.
class DeviceBytes {
 public:
  explicit DeviceBytes(size_t n) : n_(n), p_(static_cast<unsigned char*>(cuda_malloc_zeroed(n))) {}
  ~DeviceBytes() { cuda_free(p_); }
  DeviceBytes(const DeviceBytes&) = delete;
  DeviceBytes& operator=(const DeviceBytes&) = delete;
  unsigned char* get() const { return p_; }
  void upload(const void* host) {
    if (n_) cuda_copy_to_device(p_, host, n_);
  }
  void download(void* host) const {
    if (n_) cuda_copy_to_host(host, p_, n_);
  }

 private:
  size_t n_;
  unsigned char* p_;
};

class Done : public CommRequest {
 public:
  void wait() override {}
};

// Host buffers in, the inner (device) communicator's collectives underneath;
// counts its own bytes (Communicator does) like any communicator.
class StagingCommunicator : public Communicator {
 public:
  explicit StagingCommunicator(std::unique_ptr<Communicator> inner) : inner_(std::move(inner)) {}
  int rank() const override { return inner_->rank(); }
  int size() const override { return inner_->size(); }
  std::string name() const override { return inner_->name(); }
  Device device() const override { return Device::CPU; }  // host buffers, staged to the device

  void all_reduce_f64(double* buf, size_t count) override { inner_->all_reduce_f64(buf, count); }
  void broadcast(void* buf, size_t bytes, int root) override {
    inner_->broadcast(buf, bytes, root);
    stats_.broadcast_bytes += bytes;
    stats_.broadcast_calls += 1;
  }
  void barrier() override { inner_->barrier(); }
  std::unique_ptr<Communicator> split(int color, int key) override {
    auto sub = inner_->split(color, key);
    if (!sub) return nullptr;
    return std::make_unique<StagingCommunicator>(std::move(sub));
  }

 protected:
  Request start_all_gather(const void* send, void* recv, size_t count, DType dtype) override {
    const size_t bytes = count * dtype_size(dtype), W = static_cast<size_t>(size());
    const size_t mine = static_cast<size_t>(rank()) * bytes;
    DeviceBytes d_recv(W * bytes);
    if (send == static_cast<const unsigned char*>(recv) + mine) {
      d_recv.upload(recv);
      inner_->all_gather(d_recv.get() + mine, d_recv.get(), count, dtype);
    } else {
      DeviceBytes d_send(bytes);
      d_send.upload(send);
      inner_->all_gather(d_send.get(), d_recv.get(), count, dtype);
    }
    d_recv.download(recv);
    return std::make_unique<Done>();
  }
  Request start_all_reduce(void* buf, size_t count, DType dtype) override {
    DeviceBytes d(count * dtype_size(dtype));
    d.upload(buf);
    inner_->all_reduce(d.get(), count, dtype);
    d.download(buf);
    return std::make_unique<Done>();
  }
  Request start_reduce_scatter(const void* send, void* recv, size_t count, DType dtype) override {
    const size_t bytes = count * dtype_size(dtype), total = static_cast<size_t>(size()) * bytes;
    DeviceBytes d_send(total);
    d_send.upload(send);
    if (send == recv) {
      inner_->reduce_scatter(d_send.get(), d_send.get(), count, dtype);
      std::vector<unsigned char> all(total);
      d_send.download(all.data());
      std::copy(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(bytes), static_cast<unsigned char*>(recv));
    } else {
      DeviceBytes d_recv(bytes);
      inner_->reduce_scatter(d_send.get(), d_recv.get(), count, dtype);
      d_recv.download(recv);
    }
    return std::make_unique<Done>();
  }

 private:
  std::unique_ptr<Communicator> inner_;
};

}  // namespace lintrain::nccl_staging
