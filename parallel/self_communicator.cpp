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

  Request iall_gather(const float* send, float* recv, size_t count) override {
    stats_.all_gather_bytes += count * sizeof(float);
    stats_.all_gather_calls += 1;
    if (send != recv) std::memmove(recv, send, count * sizeof(float));
    return std::make_unique<DoneRequest>();
  }
  Request iall_reduce(float*, size_t count) override {
    stats_.all_reduce_bytes += count * sizeof(float);
    stats_.all_reduce_calls += 1;
    return std::make_unique<DoneRequest>();
  }
  Request ireduce_scatter(const float* send, float* recv, size_t count) override {
    stats_.reduce_scatter_bytes += count * sizeof(float);
    stats_.reduce_scatter_calls += 1;
    if (send != recv) std::memmove(recv, send, count * sizeof(float));
    return std::make_unique<DoneRequest>();
  }
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
};

}  // namespace

std::unique_ptr<Communicator> make_self_communicator() { return std::make_unique<SelfCommunicator>(); }

}  // namespace lintrain
