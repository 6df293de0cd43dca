// Tensor: a shape, a dtype, a device and a pointer into reference-counted
// storage. Kernels take raw pointers plus dimensions (llm.c style); Tensor is
// what owns memory and carries shape/dtype checks between layers.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "runtime/dtype.h"
#include "runtime/error.h"

namespace lintrain {

enum class Device : uint8_t { CPU, CUDA };
const char* device_name(Device d);

using Shape = std::vector<int64_t>;
int64_t shape_numel(const Shape& s);
std::string shape_str(const Shape& s);  // "(4, 8)"

// A block of memory on one device, freed by its deleter. Host storage is
// 64-byte aligned (one cache line, the widest AVX-512 load) and zero-filled.
class Storage {
 public:
  Storage(void* ptr, size_t nbytes, Device device, std::function<void(void*)> deleter);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data() const { return ptr_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

  static std::shared_ptr<Storage> allocate(size_t nbytes, Device device);

 private:
  void* ptr_;
  size_t nbytes_;
  Device device_;
  std::function<void(void*)> deleter_;
};

class Tensor {
 public:
  Tensor() = default;

  // New zero-filled tensor owning its storage.
  static Tensor zeros(const Shape& shape, DType dtype = DType::F32, Device device = Device::CPU);
  // Non-owning view of memory someone else keeps alive (a flat-buffer slice).
  static Tensor view(void* data, const Shape& shape, DType dtype, Device device = Device::CPU);

  const Shape& shape() const { return shape_; }
  int64_t dim(int i) const;  // negative i counts from the end
  int ndim() const { return static_cast<int>(shape_.size()); }
  int64_t numel() const { return data_ != nullptr ? shape_numel(shape_) : 0; }  // 0 when undefined
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  bool defined() const { return data_ != nullptr; }

  void* raw() const { return data_; }
  // Typed access; throws when T does not match the dtype.
  template <typename T>
  T* data() const;

  // Same memory, new shape with the same element count.
  Tensor reshape(const Shape& shape) const;
  // Rows [begin, end) of the first dimension, sharing memory.
  Tensor slice_rows(int64_t begin, int64_t end) const;

 private:
  std::shared_ptr<Storage> storage_;  // null for non-owning views
  void* data_ = nullptr;
  Shape shape_;
  DType dtype_ = DType::F32;
  Device device_ = Device::CPU;
};

template <typename T>
struct DTypeOf;
template <> struct DTypeOf<float> { static constexpr DType value = DType::F32; };
template <> struct DTypeOf<int32_t> { static constexpr DType value = DType::I32; };
template <> struct DTypeOf<uint16_t> { static constexpr DType value = DType::BF16; };
template <> struct DTypeOf<uint8_t> { static constexpr DType value = DType::F8E4M3; };

template <typename T>
T* Tensor::data() const {
  const DType want = DTypeOf<T>::value;
  const bool ok = dtype_ == want || (want == DType::BF16 && dtype_ == DType::U16) ||
                  (want == DType::F8E4M3 && dtype_ == DType::F8E5M2);
  LT_CHECK(ok, "[Tensor::data] tensor of dtype ", dtype_name(dtype_), " and shape ",
           shape_str(shape_), " accessed as ", dtype_name(want));
  return static_cast<T*>(data_);
}

}  // namespace lintrain
