#pragma once

// The FP8 ops of the op interface (runtime/ops.h includes this; include
// runtime/ops.h, not this file). Checks in runtime/ops_fp8.cpp.
// Bodies: runtime/{cpu,cuda}/fp8; the scalar conversions (and their exact
// rules, which are those of cuda_fp8.h) in runtime/fp8_math.h, one definition
// for both backends, so every op here gives the same bits on CPU and CUDA.
// The scaling recipes that choose the scales are host logic
// (runtime/fp8_scaling.h); the emulated FP8 GEMM is runtime/fp8_gemm.h.
// Every pointer lives on ctx.device, the counts included.
#include <cstdint>

#include "runtime/context.h"
#include "runtime/fp8_math.h"  // Fp8Format

namespace lintrain {

// What a quantisation lost, accumulated (+=) over the calls given the same
// struct, so a step can sum its GEMMs and read the counts back once.
//   saturated: finite inputs whose scaled magnitude is past the format's max
//              (saturating: stored as +-max; not saturating: +-max up to the
//              rounding threshold, 464 / 61440, NaN (E4M3) or +-inf (E5M2) past it)
//   flushed:   finite nonzero inputs stored as +-0 (underflow)
//   nonfinite: NaN or +-inf inputs (NaN stays NaN; inf follows the overflow rule)
struct Fp8Counts {
  int64_t saturated = 0;
  int64_t flushed = 0;
  int64_t nonfinite = 0;
};

// out[i] (n codes) = fp8(in[i] * scale), the product rounded to f32 first.
// counts: null = not wanted. n >= 0; scale finite and > 0.
void fp8_encode(const Context& ctx, uint8_t* out, const float* in, int64_t n, float scale, Fp8Format format,
                bool saturate, Fp8Counts* counts);

// out[i] (n floats) = value(in[i]) * scale_inv (one f32 product).
void fp8_decode(const Context& ctx, float* out, const uint8_t* in, int64_t n, float scale_inv, Fp8Format format);

// The amax of a tensor: the largest |x| over its finite values (0 when none)
// and how many values are NaN or +-inf, so a scale never sees a NaN.
// Returned on the host (on CUDA: one read-back, which waits for the stream).
// Needs fp8_amax_scratch_bytes.
struct Fp8Amax {
  float amax = 0.0f;
  int64_t nonfinite = 0;
};
Fp8Amax fp8_amax(const Context& ctx, const float* x, int64_t n);
size_t fp8_amax_scratch_bytes(Device device, int64_t n);

// Blockwise quantisation (DeepSeek-V3): in (rows, cols) row-major is cut into
// tiles of tile_rows x tile_cols (1 x 128 for activations and gradients,
// 128 x 128 for weights; edge tiles may be smaller). Each tile gets the
// power-of-two scale s = fp8_math::pow2_scale(tile amax over finite values),
// so nothing finite saturates; out (rows, cols) = fp8(in * s), saturating;
// scale_inv (ceil(rows / tile_rows), ceil(cols / tile_cols)) row-major = 1 / s
// (exact), the factor dequantisation multiplies by. counts as fp8_encode's.
void fp8_quantize_blockwise(const Context& ctx, uint8_t* out, float* scale_inv, const float* in, int rows,
                            int cols, int tile_rows, int tile_cols, Fp8Format format, Fp8Counts* counts);
// out (rows, cols) = value(in) * scale_inv of its tile.
void fp8_dequantize_blockwise(const Context& ctx, float* out, const uint8_t* in, const float* scale_inv, int rows,
                              int cols, int tile_rows, int tile_cols, Fp8Format format);
// Entries of the scale_inv array of a (rows, cols) tensor in tiles of tile_rows x tile_cols.
int64_t fp8_blockwise_scale_count(int rows, int cols, int tile_rows, int tile_cols);

}  // namespace lintrain
