// CPU RoPE: a table of cos/sin per (position, frequency) and an elementwise
// rotation of each (i, i + d/2) pair. Parallel over tokens; every element is
// computed by one thread with the same operations, so results do not depend
// on the thread count.
#include "runtime/cpu/rope.h"

#include <cmath>

#include "runtime/error.h"

namespace lintrain {

RopeTable::RopeTable(int head_dim, double theta, int first_pos, int num_pos)
    : head_dim_(head_dim), theta_(theta), first_pos_(first_pos), num_pos_(num_pos) {
  LT_CHECK(head_dim > 0 && head_dim % 2 == 0, "[rope] head_dim must be even and positive, got ", head_dim,
           " (RoPE rotates pairs (i, i + d/2))");
  LT_CHECK(theta > 0, "[rope] rope_theta must be > 0, got ", theta);
  LT_CHECK(first_pos >= 0 && num_pos >= 0, "[rope] positions [", first_pos, ", ", first_pos, " + ", num_pos,
           ") must be non-negative");
  const int half = head_dim / 2;
  cos_.resize(static_cast<size_t>(num_pos) * half);
  sin_.resize(cos_.size());
  std::vector<double> inv_freq(half);
  for (int i = 0; i < half; ++i) inv_freq[i] = std::pow(theta, -2.0 * i / head_dim);
  for (int p = 0; p < num_pos; ++p)
    for (int i = 0; i < half; ++i) {
      const double angle = static_cast<double>(first_pos + p) * inv_freq[i];
      cos_[static_cast<size_t>(p) * half + i] = static_cast<float>(std::cos(angle));
      sin_[static_cast<size_t>(p) * half + i] = static_cast<float>(std::sin(angle));
    }
}

namespace {

// sign = +1 rotates by +angle (forward), -1 by -angle (backward = transpose).
void rope_rotate(const char* op, float* x, int ldx, int B, int T, int heads, int pos_offset,
                 const RopeTable& table, float sign) {
  const int d = table.head_dim();
  LT_CHECK(B >= 0 && T >= 0 && heads > 0, "[", op, "] bad shape B=", B, " T=", T, " heads=", heads);
  LT_CHECK(ldx >= heads * d, "[", op, "] row stride ", ldx, " is smaller than heads * head_dim = ", heads, " * ",
           d);
  LT_CHECK(table.covers(pos_offset, T), "[", op, "] positions [", pos_offset, ", ", pos_offset + T,
           ") are outside the table's [", table.first_pos(), ", ", table.first_pos() + table.num_pos(),
           "); build the RopeTable for these positions");
  const int half = d / 2;
  const long rows = static_cast<long>(B) * T;
#pragma omp parallel for schedule(static)
  for (long r = 0; r < rows; ++r) {
    const int t = static_cast<int>(r % T);
    const float* c = table.cos_at(pos_offset + t);
    const float* s = table.sin_at(pos_offset + t);
    float* row = x + r * ldx;
    for (int h = 0; h < heads; ++h) {
      float* x1 = row + h * d;
      float* x2 = x1 + half;
      for (int i = 0; i < half; ++i) {
        const float a = x1[i], b = x2[i], si = sign * s[i];
        x1[i] = a * c[i] - b * si;
        x2[i] = b * c[i] + a * si;
      }
    }
  }
}

}  // namespace

void rope_forward(float* x, int ldx, int B, int T, int heads, int pos_offset, const RopeTable& table) {
  rope_rotate("rope_forward", x, ldx, B, T, heads, pos_offset, table, 1.0f);
}

void rope_backward(float* dx, int lddx, int B, int T, int heads, int pos_offset, const RopeTable& table) {
  rope_rotate("rope_backward", dx, lddx, B, T, heads, pos_offset, table, -1.0f);
}

}  // namespace lintrain
