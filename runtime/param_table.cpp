#include "runtime/param_table.h"

#include <cstring>

#include "runtime/device.h"

namespace lintrain {

int ParamTable::add(const std::string& name, const Shape& shape, bool fuse_with_previous) {
  LT_CHECK(index_.find(name) == index_.end(), "[ParamTable] duplicate tensor name '", name, "'");
  const int64_t n = shape_numel(shape);
  LT_CHECK(n > 0, "[ParamTable] tensor '", name, "' has empty shape ", shape_str(shape));
  LT_CHECK(!fuse_with_previous || !views_.empty(), "[ParamTable] '", name,
           "' cannot fuse: it is the first tensor");
  const int64_t offset =
      fuse_with_previous ? views_.back().offset + views_.back().numel : buffer_numel_;
  TensorView v{name, shape, offset, n};
  buffer_numel_ = (offset + n + 15) / 16 * 16;
  index_[name] = static_cast<int>(views_.size());
  views_.push_back(std::move(v));
  return static_cast<int>(views_.size()) - 1;
}

int ParamTable::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? -1 : it->second;
}

const TensorView& ParamTable::at(const std::string& name) const {
  const int i = find(name);
  LT_CHECK(i >= 0, "[ParamTable] no tensor named '", name, "'");
  return views_[static_cast<size_t>(i)];
}

int64_t ParamTable::param_count() const {
  int64_t n = 0;
  for (const auto& v : views_) n += v.numel;
  return n;
}

FlatBuffer::FlatBuffer(const ParamTable& table, Device device, DType dtype)
    : storage_(Tensor::zeros({table.buffer_numel()}, dtype, device)) {}

Tensor FlatBuffer::tensor(const TensorView& v) const {
  return Tensor::view(static_cast<char*>(raw()) + static_cast<size_t>(v.offset) * dtype_size(dtype()), v.shape,
                      dtype(), device());
}

void FlatBuffer::zero() {
  if (nbytes() == 0) return;
  if (device() == Device::CPU) std::memset(raw(), 0, nbytes());
  else cuda_memset_zero(raw(), nbytes());
}

}  // namespace lintrain
