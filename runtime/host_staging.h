// Host-side work on memory that lives on an op's device: the few steps only
// the host does (LAPACK's SVD and QR, RNG draws, reading a handful of flags)
// read device floats through a host copy and write back through one. On the
// CPU there is nothing to copy: read() returns the pointer itself and
// write() hands out the destination, so CPU runs pay nothing. On CUDA each
// read and publish is one counted copy (runtime/device.h). One HostStaging
// holds one buffer: use one per array that is staged at the same time. The
// buffer grows to the largest request and is then reused.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/context.h"
#include "runtime/device.h"

namespace lintrain {

class HostStaging {
 public:
  // n floats of `p` (on ctx.device), readable on the host until the next call.
  const float* read(const Context& ctx, const float* p, int64_t n) {
    if (ctx.device == Device::CPU) return p;
    float* h = grow(n);
    copy_to_host(ctx.device, h, p, static_cast<size_t>(n) * sizeof(float));
    return h;
  }
  // Host memory for n floats bound for `p`: fill it, then publish(ctx, p, n).
  float* write(const Context& ctx, float* p, int64_t n) {
    if (ctx.device == Device::CPU) return p;
    return grow(n);
  }
  // Copies what was written into write()'s memory to `p` (nothing on the CPU).
  void publish(const Context& ctx, float* p, int64_t n) {
    if (ctx.device != Device::CPU) copy_from_host(ctx.device, p, buf_.data(), static_cast<size_t>(n) * sizeof(float));
  }
  // Sizes the buffer for n floats ahead of time (only where a copy is needed).
  void reserve(const Context& ctx, int64_t n) {
    if (ctx.device != Device::CPU) grow(n);
  }

 private:
  float* grow(int64_t n) {
    if (buf_.size() < static_cast<size_t>(n)) buf_.resize(static_cast<size_t>(n));
    return buf_.data();
  }
  std::vector<float> buf_;
};

}  // namespace lintrain
