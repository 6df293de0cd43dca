// The harness of the op tests (test_ops*.cpp): a backend (a context with an
// arena on its device, and buffers there) and the comparison of an op's CUDA
// body against its CPU body on the same inputs, by normalised error
// max |a - b| / max |b| under a per-op tolerance. Without a GPU (or built
// without CUDA) the comparison skips, saying so.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cmath>
#include <type_traits>
#include <vector>

#include "runtime/context.h"
#include "runtime/device.h"
#include "runtime/rng.h"

namespace lintrain::test {

inline std::vector<float> randn(size_t n, Rng& rng, double scale = 1.0) {
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(rng.normal() * scale);
  return v;
}

inline double normalised_error(const std::vector<float>& got, const std::vector<float>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    num = std::max(num, std::fabs(static_cast<double>(got[i]) - want[i]));
    den = std::max(den, std::fabs(static_cast<double>(want[i])));
  }
  return num / std::max(den, 1e-30);
}

// One backend: a context with an arena on its device, and buffers there.
class Backend {
 public:
  explicit Backend(Device device) : arena_(device) {
    ctx_.device = device;
    ctx_.scratch = &arena_;
    arena_.reserve(64 << 20);
  }
  const Context& ctx() const { return ctx_; }
  // A buffer on the device holding `host` (f32, i32 or i64; at least one
  // element is allocated, so an empty input still has a pointer).
  template <typename T>
  T* upload(const std::vector<T>& host) {
    static_assert(std::is_same<T, float>::value || std::is_same<T, int32_t>::value || std::is_same<T, int64_t>::value,
                  "f32, i32 or i64 buffers");
    const DType dtype = std::is_same<T, float>::value ? DType::F32 : std::is_same<T, int32_t>::value ? DType::I32
                                                                                                    : DType::I64;
    Tensor t = Tensor::zeros({static_cast<int64_t>(std::max<size_t>(host.size(), 1))}, dtype, ctx_.device);
    if (ctx_.device == Device::CUDA) cuda_copy_to_device(t.raw(), host.data(), host.size() * sizeof(T));
    else std::copy(host.begin(), host.end(), static_cast<T*>(t.raw()));
    owned_.push_back(t);
    return static_cast<T*>(t.raw());
  }
  template <typename T>
  std::vector<T> download(const T* p, size_t n) const {
    std::vector<T> v(n);
    if (ctx_.device == Device::CUDA) cuda_copy_to_host(v.data(), p, n * sizeof(T));
    else std::copy(p, p + n, v.begin());
    return v;
  }

 private:
  Arena arena_;
  Context ctx_;
  std::vector<Tensor> owned_;
};

// Runs `body` (which takes a Backend and returns its outputs, downloaded) on
// the CPU and on CUDA and compares each output within `tol`.
template <typename Body>
void compare_with_cpu(const char* op, double tol, Body body) {
  if (!LINTRAIN_HAS_CUDA) GTEST_SKIP() << "built without CUDA: " << op << " runs on the CPU only";
  if (!cuda_available()) GTEST_SKIP() << "no CUDA GPU on this machine: " << op << " on CUDA is not exercised";
  Backend cpu(Device::CPU), gpu(Device::CUDA);
  const std::vector<std::vector<float>> want = body(cpu), got = body(gpu);
  ASSERT_EQ(want.size(), got.size());
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_LT(normalised_error(got[i], want[i]), tol) << op << " output " << i;
}

}  // namespace lintrain::test
