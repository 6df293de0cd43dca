// The cos/sin tables of rotary position embeddings (RoPE), built once per
// position range on the host and kept on the device the rotation runs on
// (the op: rope_forward / rope_backward in runtime/ops.h).
//
// Convention: Hugging Face Llama's "rotate_half", so exported weights line up.
// Within a head of width d, element i (i < d/2) pairs with element i + d/2 and
// the pair turns by the angle pos * inv_freq_i, inv_freq_i = theta^(-2i/d):
//   y[i]       = x[i] * cos - x[i + d/2] * sin
//   y[i + d/2] = x[i + d/2] * cos + x[i] * sin
// (HF: y = x * cat(cos, cos) + rotate_half(x) * cat(sin, sin)). The rotation
// is orthogonal, so the backward turns the gradient by -angle (R^T = R^-1).
//
// Angles are computed in double and stored as float: HF computes them in
// float32, whose error grows with the position (about 1e-3 rad at position
// 3e4); double keeps long-context positions exact to float rounding.
#pragma once

#include <cstddef>

#include "runtime/tensor.h"

namespace lintrain {

class RopeTable {
 public:
  RopeTable() = default;
  // Positions [first_pos, first_pos + num_pos), head_dim / 2 values each, on
  // `device`. head_dim must be even and > 0, theta > 0, first_pos, num_pos >= 0.
  RopeTable(int head_dim, double theta, int first_pos, int num_pos, Device device = Device::CPU);

  int head_dim() const { return head_dim_; }
  double theta() const { return theta_; }
  int first_pos() const { return first_pos_; }
  int num_pos() const { return num_pos_; }
  Device device() const { return cos_.device(); }
  bool covers(int pos_begin, int count) const {
    return pos_begin >= first_pos_ && pos_begin + count <= first_pos_ + num_pos_;
  }
  // head_dim / 2 values per position from absolute position pos on
  // (covers(pos, 1) must hold), in the table's device memory.
  const float* cos_at(int pos) const { return row(cos_, pos); }
  const float* sin_at(int pos) const { return row(sin_, pos); }
  size_t bytes() const { return cos_.nbytes() + sin_.nbytes(); }

 private:
  const float* row(const Tensor& t, int pos) const {
    return static_cast<const float*>(t.raw()) + static_cast<size_t>(pos - first_pos_) * (head_dim_ / 2);
  }
  int head_dim_ = 0;
  double theta_ = 0.0;
  int first_pos_ = 0;
  int num_pos_ = 0;
  Tensor cos_, sin_;  // (num_pos, head_dim / 2) each
};

}  // namespace lintrain
