#include "runtime/rope_table.h"

#include <cmath>
#include <vector>

#include "runtime/device.h"
#include "runtime/error.h"

namespace lintrain {

RopeTable::RopeTable(int head_dim, double theta, int first_pos, int num_pos, Device device)
    : head_dim_(head_dim), theta_(theta), first_pos_(first_pos), num_pos_(num_pos) {
  LT_CHECK(head_dim > 0 && head_dim % 2 == 0, "[rope] head_dim must be even and positive, got ", head_dim,
           " (RoPE rotates pairs (i, i + d/2))");
  LT_CHECK(theta > 0, "[rope] rope_theta must be > 0, got ", theta);
  LT_CHECK(first_pos >= 0 && num_pos >= 0, "[rope] positions [", first_pos, ", ", first_pos, " + ", num_pos,
           ") must be non-negative");
  const int half = head_dim / 2;
  const size_t n = static_cast<size_t>(num_pos) * half;
  std::vector<float> cos(n), sin(n);
  std::vector<double> inv_freq(half);
  for (int i = 0; i < half; ++i) inv_freq[i] = std::pow(theta, -2.0 * i / head_dim);
  for (int p = 0; p < num_pos; ++p)
    for (int i = 0; i < half; ++i) {
      const double angle = static_cast<double>(first_pos + p) * inv_freq[i];
      cos[static_cast<size_t>(p) * half + i] = static_cast<float>(std::cos(angle));
      sin[static_cast<size_t>(p) * half + i] = static_cast<float>(std::sin(angle));
    }
  const Shape shape = {num_pos, half};
  cos_ = Tensor::zeros(shape, DType::F32, device);
  sin_ = Tensor::zeros(shape, DType::F32, device);
  // Built once per position range, before training.
  copy_from_host(device, cos_.raw(), cos.data(), n * sizeof(float));
  copy_from_host(device, sin_.raw(), sin.data(), n * sizeof(float));
}

}  // namespace lintrain
