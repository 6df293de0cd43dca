// Rotary position embeddings (RoPE) in the Hugging Face Llama "rotate_half"
// convention, so weights exported to HF line up: within each head of width d,
// element i (i < d/2) is paired with element i + d/2 and the pair is rotated by
// the angle pos * inv_freq_i, inv_freq_i = theta^(-2i/d):
//   y[i]       = x[i] * cos - x[i + d/2] * sin
//   y[i + d/2] = x[i + d/2] * cos + x[i] * sin
// (HF: y = x * cat(cos, cos) + rotate_half(x) * cat(sin, sin)).
// The rotation is orthogonal, so the backward is the rotation by -angle applied
// to the gradient (R^T = R^-1).
//
// Angles are computed in double and the cos/sin stored as float: HF computes
// them in float32, whose error grows with the position (about 1e-3 rad at
// position 3e4); double keeps long-context positions exact to float rounding.
#pragma once

#include <cstddef>
#include <vector>

namespace lintrain {

// cos/sin tables for positions [first_pos, first_pos + num_pos), each row
// head_dim / 2 values. Owns its memory (num_pos * head_dim floats in all).
class RopeTable {
 public:
  RopeTable() = default;
  // head_dim must be even and > 0, theta > 0, first_pos >= 0, num_pos >= 0.
  RopeTable(int head_dim, double theta, int first_pos, int num_pos);

  int head_dim() const { return head_dim_; }
  double theta() const { return theta_; }
  int first_pos() const { return first_pos_; }
  int num_pos() const { return num_pos_; }
  bool covers(int pos_begin, int count) const {
    return pos_begin >= first_pos_ && pos_begin + count <= first_pos_ + num_pos_;
  }
  // head_dim / 2 values for absolute position pos (covers(pos, 1) must hold).
  const float* cos_at(int pos) const { return cos_.data() + static_cast<size_t>(pos - first_pos_) * (head_dim_ / 2); }
  const float* sin_at(int pos) const { return sin_.data() + static_cast<size_t>(pos - first_pos_) * (head_dim_ / 2); }
  size_t bytes() const { return (cos_.size() + sin_.size()) * sizeof(float); }

 private:
  int head_dim_ = 0;
  double theta_ = 0.0;
  int first_pos_ = 0;
  int num_pos_ = 0;
  std::vector<float> cos_;  // (num_pos, head_dim / 2)
  std::vector<float> sin_;  // (num_pos, head_dim / 2)
};

// In place on x: B sequences of T tokens, each token a row of `heads` heads of
// table.head_dim() floats; token t of sequence b starts at x + (b*T + t) * ldx
// (ldx >= heads * head_dim; elements past heads * head_dim are not touched).
// Token t is at absolute position pos_offset + t; the table must cover
// [pos_offset, pos_offset + T). Throws lintrain::Error on bad arguments.
void rope_forward(float* x, int ldx, int B, int T, int heads, int pos_offset, const RopeTable& table);
// The transpose (= inverse) of rope_forward, in place on a gradient dx with
// the same layout: dx <- R^T dx.
void rope_backward(float* dx, int lddx, int B, int T, int heads, int pos_offset, const RopeTable& table);

}  // namespace lintrain
