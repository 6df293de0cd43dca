// FP8 conversions on the CPU (the ops: runtime/ops.h, "FP8 numerics"). The
// scalar rules are runtime/fp8_math.h's; the loops split elements (or tiles)
// over threads and sum the counts as integers, and an amax is a max: results
// are the same for any thread count.
#include <algorithm>
#include <cmath>

#include "runtime/backend.h"
#include "runtime/fp8_math.h"

namespace lintrain::cpu {

namespace {

void add_counts(Fp8Counts* counts, int64_t sat, int64_t flushed, int64_t nonfinite) {
  if (counts == nullptr) return;
  counts->saturated += sat;
  counts->flushed += flushed;
  counts->nonfinite += nonfinite;
}

}  // namespace

void fp8_encode(uint8_t* out, const float* in, int64_t n, float scale, Fp8Format format, bool saturate,
                Fp8Counts* counts) {
  int64_t sat = 0, flushed = 0, nonfinite = 0;
#pragma omp parallel for schedule(static) reduction(+ : sat, flushed, nonfinite)
  for (int64_t i = 0; i < n; ++i) {
    const float y = in[i] * scale;
    const uint8_t code = fp8_math::encode(y, format, saturate);
    out[i] = code;
    const uint32_t lost = fp8_math::encode_loss(in[i], y, code, format);
    sat += (lost & fp8_math::kLostSaturated) != 0;
    flushed += (lost & fp8_math::kLostFlushed) != 0;
    nonfinite += (lost & fp8_math::kLostNonfinite) != 0;
  }
  add_counts(counts, sat, flushed, nonfinite);
}

void fp8_decode(float* out, const uint8_t* in, int64_t n, float scale_inv, Fp8Format format) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) out[i] = fp8_math::decode(in[i], format) * scale_inv;
}

Fp8Amax fp8_amax(const float* x, int64_t n) {
  float amax = 0.0f;
  int64_t nonfinite = 0;
#pragma omp parallel for schedule(static) reduction(max : amax) reduction(+ : nonfinite)
  for (int64_t i = 0; i < n; ++i) {
    if (fp8_math::is_finite(x[i])) amax = std::max(amax, std::fabs(x[i]));
    else ++nonfinite;
  }
  return {amax, nonfinite};
}

void fp8_quantize_blockwise(uint8_t* out, float* scale_inv, const float* in, int rows, int cols, int tile_rows,
                            int tile_cols, Fp8Format format, Fp8Counts* counts) {
  const int64_t trows = (rows + tile_rows - 1) / tile_rows, tcols = (cols + tile_cols - 1) / tile_cols;
  int64_t sat = 0, flushed = 0, nonfinite = 0;
#pragma omp parallel for schedule(static) reduction(+ : sat, flushed, nonfinite)
  for (int64_t t = 0; t < trows * tcols; ++t) {
    const int64_t r0 = (t / tcols) * tile_rows, c0 = (t % tcols) * tile_cols;
    const int64_t r1 = std::min<int64_t>(r0 + tile_rows, rows), c1 = std::min<int64_t>(c0 + tile_cols, cols);
    float amax = 0.0f;
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t c = c0; c < c1; ++c) {
        const float x = in[r * cols + c];
        if (fp8_math::is_finite(x)) amax = std::max(amax, std::fabs(x));
      }
    const float s = fp8_math::pow2_scale(amax, format);
    scale_inv[t] = 1.0f / s;  // exact: s is a power of two
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t c = c0; c < c1; ++c) {
        const float x = in[r * cols + c], y = x * s;
        const uint8_t code = fp8_math::encode(y, format, /*saturate=*/true);
        out[r * cols + c] = code;
        const uint32_t lost = fp8_math::encode_loss(x, y, code, format);
        sat += (lost & fp8_math::kLostSaturated) != 0;
        flushed += (lost & fp8_math::kLostFlushed) != 0;
        nonfinite += (lost & fp8_math::kLostNonfinite) != 0;
      }
  }
  add_counts(counts, sat, flushed, nonfinite);
}

void fp8_dequantize_blockwise(float* out, const uint8_t* in, const float* scale_inv, int rows, int cols,
                              int tile_rows, int tile_cols, Fp8Format format) {
  const int64_t tcols = (cols + tile_cols - 1) / tile_cols;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float* srow = scale_inv + (r / tile_rows) * tcols;
    for (int64_t c = 0; c < cols; ++c)
      out[r * cols + c] = fp8_math::decode(in[r * cols + c], format) * srow[c / tile_cols];
  }
}

}  // namespace lintrain::cpu
