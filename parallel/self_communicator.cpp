// The communicator of a one-rank group: every collective is a copy (or
// nothing), completed before the call returns.
#include <cstring>

#include "parallel/communicator.h"

namespace lintrain {

namespace {

class DoneRequest : public CommRequest {
 public:
  void wait() override {}
};

class SelfCommunicator : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string name() const override { return "self"; }
  Device device() const override { return Device::CPU; }

  void all_reduce_f64(double*, size_t) override {}
  void broadcast(void*, size_t bytes, int) override {
    stats_.broadcast_bytes += bytes;
    stats_.broadcast_calls += 1;
  }
  void barrier() override {}
  std::unique_ptr<Communicator> split(int color, int) override {
    if (color < 0) return nullptr;
    return std::make_unique<SelfCommunicator>();
  }

 protected:
  // A sum over one rank is the rank's own values, in every dtype.
  Request start_all_gather(const void* send, void* recv, size_t count, DType dtype) override {
    if (send != recv && count) std::memmove(recv, send, count * dtype_size(dtype));
    return std::make_unique<DoneRequest>();
  }
  Request start_all_reduce(void*, size_t, DType) override { return std::make_unique<DoneRequest>(); }
  Request start_reduce_scatter(const void* send, void* recv, size_t count, DType dtype) override {
    if (send != recv && count) std::memmove(recv, send, count * dtype_size(dtype));
    return std::make_unique<DoneRequest>();
  }
};

}  // namespace

std::unique_ptr<Communicator> make_self_communicator() { return std::make_unique<SelfCommunicator>(); }

}  // namespace lintrain
