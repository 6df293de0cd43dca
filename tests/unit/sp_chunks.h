// Test-only: cut (B, T, width) row-major activations into the W contiguous
// sequence chunks SP ranks hold, (B, T/W, width) each, and put them back.
// Token t of batch row b, chunk j = t / C, is row b*C + t % C of chunk j.
#pragma once

#include <algorithm>
#include <vector>

namespace lintrain::test {

inline std::vector<float> chunk_of(const std::vector<float>& x, int B, int T, int W, int j, int width) {
  const int C = T / W;
  std::vector<float> out(static_cast<size_t>(B) * C * width);
  for (int b = 0; b < B; ++b)
    std::copy_n(x.begin() + (static_cast<size_t>(b) * T + static_cast<size_t>(j) * C) * width,
                static_cast<size_t>(C) * width, out.begin() + static_cast<size_t>(b) * C * width);
  return out;
}

inline void put_chunk(std::vector<float>& x, const std::vector<float>& chunk, int B, int T, int W, int j,
                      int width) {
  const int C = T / W;
  for (int b = 0; b < B; ++b)
    std::copy_n(chunk.begin() + static_cast<size_t>(b) * C * width, static_cast<size_t>(C) * width,
                x.begin() + (static_cast<size_t>(b) * T + static_cast<size_t>(j) * C) * width);
}

}  // namespace lintrain::test
