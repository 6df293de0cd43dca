// Flat buffers with a table of named views. All parameters live in one
// contiguous f32 buffer, their gradients in a second with the same layout, and
// each optimizer state in further buffers of that layout. Zeroing gradients is
// one memset, the gradient all-reduce works on slices, a checkpoint is one
// write, and a tensor is found by its Hugging Face name.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "runtime/tensor.h"

namespace lintrain {

// One named tensor inside a flat buffer.
struct TensorView {
  std::string name;  // "model.layers.0.self_attn.q_proj.weight"
  Shape shape;       // weights [out_features, in_features]
  int64_t offset;    // in elements from the start of the buffer; 16-aligned
  int64_t numel;
};

class ParamTable {
 public:
  // Appends a tensor; returns its index. Offsets are padded to 16 elements
  // (64 bytes) so every view starts on a cache line, unless `fuse_with_previous`
  // places it right after the previous tensor: then the two are one matrix
  // (q|k|v projections, gate|up) and a layer multiplies by both in one GEMM.
  // Names must be unique.
  int add(const std::string& name, const Shape& shape, bool fuse_with_previous = false);

  const std::vector<TensorView>& views() const { return views_; }
  const TensorView& view(int i) const { return views_.at(static_cast<size_t>(i)); }
  // Index of a name, or -1.
  int find(const std::string& name) const;
  // Throws lintrain::Error naming the missing tensor.
  const TensorView& at(const std::string& name) const;

  int64_t buffer_numel() const { return buffer_numel_; }  // with padding
  int64_t param_count() const;                            // without padding
  size_t size() const { return views_.size(); }

 private:
  std::vector<TensorView> views_;
  std::unordered_map<std::string, int> index_;
  int64_t buffer_numel_ = 0;
};

// A zero-initialised buffer laid out by a ParamTable: one element of `dtype`
// per parameter (f32 for master weights, gradients and optimizer state; bf16
// for a low-precision copy), on `device`. The float accessors need f32 (they
// throw otherwise); raw() and element_size() serve the other dtypes.
class FlatBuffer {
 public:
  FlatBuffer() = default;
  explicit FlatBuffer(const ParamTable& table, Device device = Device::CPU, DType dtype = DType::F32);

  float* data() const { return storage_.data<float>(); }
  void* raw() const { return storage_.raw(); }
  int64_t numel() const { return storage_.numel(); }
  DType dtype() const { return storage_.dtype(); }
  Device device() const { return storage_.device(); }
  size_t nbytes() const { return storage_.nbytes(); }
  float* at(const TensorView& v) const { return data() + v.offset; }
  Tensor tensor(const TensorView& v) const;  // a shaped view into the buffer
  // Every element zero, with the op of the buffer's device.
  void zero();
  const Tensor& storage() const { return storage_; }

 private:
  Tensor storage_;
};

}  // namespace lintrain
