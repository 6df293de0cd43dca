#include "runtime/tensor.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "runtime/device.h"

namespace lintrain {

const char* device_name(Device d) { return d == Device::CPU ? "cpu" : "cuda"; }

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << "(";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  if (s.size() == 1) os << ",";
  os << ")";
  return os.str();
}

Storage::Storage(void* ptr, size_t nbytes, Device device, std::function<void(void*)> deleter)
    : ptr_(ptr), nbytes_(nbytes), device_(device), deleter_(std::move(deleter)) {}

Storage::~Storage() {
  if (ptr_ && deleter_) deleter_(ptr_);
}

namespace {
std::atomic<uint64_t> g_to_device_bytes{0}, g_to_device_calls{0}, g_to_host_bytes{0}, g_to_host_calls{0};
}  // namespace

void copy_from_host(Device device, void* dst, const void* src, size_t nbytes) {
  if (nbytes == 0) return;
  if (device == Device::CUDA) {
    cuda_copy_to_device(dst, src, nbytes);
    g_to_device_bytes += nbytes;
    ++g_to_device_calls;
  } else {
    std::memcpy(dst, src, nbytes);
  }
}

void copy_to_host(Device device, void* dst, const void* src, size_t nbytes) {
  if (nbytes == 0) return;
  if (device == Device::CUDA) {
    cuda_copy_to_host(dst, src, nbytes);
    g_to_host_bytes += nbytes;
    ++g_to_host_calls;
  } else {
    std::memcpy(dst, src, nbytes);
  }
}

HostTransferStats host_transfer_stats() {
  HostTransferStats s;
  s.to_device_bytes = g_to_device_bytes, s.to_device_calls = g_to_device_calls;
  s.to_host_bytes = g_to_host_bytes, s.to_host_calls = g_to_host_calls;
  return s;
}

std::shared_ptr<Storage> Storage::allocate(size_t nbytes, Device device) {
  if (device == Device::CUDA) {
    void* p = cuda_malloc_zeroed(nbytes);
    return std::make_shared<Storage>(p, nbytes, device, [](void* q) { cuda_free(q); });
  }
  const size_t rounded = (nbytes + 63) / 64 * 64;
  void* p = rounded ? std::aligned_alloc(64, rounded) : nullptr;
  LT_CHECK(p || rounded == 0, "[Storage::allocate] out of host memory allocating ", nbytes,
           " bytes");
  if (p) std::memset(p, 0, rounded);
  return std::make_shared<Storage>(p, nbytes, device, [](void* q) { std::free(q); });
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  for (int64_t d : shape)
    LT_CHECK(d >= 0, "[Tensor::zeros] negative dimension in shape ", shape_str(shape));
  Tensor t;
  t.shape_ = shape;
  t.dtype_ = dtype;
  t.device_ = device;
  t.storage_ = Storage::allocate(static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype), device);
  t.data_ = t.storage_->data();
  return t;
}

Tensor Tensor::view(void* data, const Shape& shape, DType dtype, Device device) {
  Tensor t;
  t.shape_ = shape;
  t.dtype_ = dtype;
  t.device_ = device;
  t.data_ = data;
  return t;
}

int64_t Tensor::dim(int i) const {
  const int n = ndim();
  const int j = i < 0 ? i + n : i;
  LT_CHECK(j >= 0 && j < n, "[Tensor::dim] index ", i, " out of range for shape ", shape_str(shape_));
  return shape_[j];
}

Tensor Tensor::reshape(const Shape& shape) const {
  LT_CHECK(shape_numel(shape) == numel(), "[Tensor::reshape] cannot reshape ", shape_str(shape_),
           " to ", shape_str(shape));
  Tensor t = *this;
  t.shape_ = shape;
  return t;
}

Tensor Tensor::slice_rows(int64_t begin, int64_t end) const {
  LT_CHECK(ndim() >= 1 && 0 <= begin && begin <= end && end <= shape_[0],
           "[Tensor::slice_rows] rows [", begin, ", ", end, ") out of range for shape ",
           shape_str(shape_));
  Tensor t = *this;
  const int64_t row = numel() / (shape_[0] ? shape_[0] : 1);
  t.data_ = static_cast<char*>(data_) + begin * row * static_cast<int64_t>(dtype_size(dtype_));
  t.shape_[0] = end - begin;
  return t;
}

}  // namespace lintrain
