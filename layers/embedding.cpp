#include "layers/embedding.h"

#include <cstring>

#include "runtime/error.h"

namespace lintrain {

void embedding_forward(float* out, const int32_t* tokens, const float* wte, int N, int C, int V) {
  for (int n = 0; n < N; ++n)
    LT_CHECK(tokens[n] >= 0 && tokens[n] < V, "[embedding] token id ", tokens[n], " at position ",
             n, " is outside the vocabulary [0, ", V, "); check model.vocab_size against the data");
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; ++n)
    std::memcpy(out + static_cast<int64_t>(n) * C, wte + static_cast<int64_t>(tokens[n]) * C,
                sizeof(float) * C);
}

void embedding_backward(float* dwte, const float* dout, const int32_t* tokens, int N, int C) {
  constexpr int kCols = 64;  // one thread's column slice: a few cache lines per row
  const int nslices = (C + kCols - 1) / kCols;
#pragma omp parallel for schedule(static)
  for (int s = 0; s < nslices; ++s) {
    const int c0 = s * kCols, c1 = c0 + kCols < C ? c0 + kCols : C;
    for (int n = 0; n < N; ++n) {
      float* row = dwte + static_cast<int64_t>(tokens[n]) * C;
      const float* g = dout + static_cast<int64_t>(n) * C;
      for (int c = c0; c < c1; ++c) row[c] += g[c];
    }
  }
}

}  // namespace lintrain
