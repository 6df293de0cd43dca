// The FP8 GEMM of the linear layers, emulated (issue 14): both operands are
// quantised to FP8 with their recipe's scales (runtime/fp8_scaling.h), read
// back to f32 (dequantised) and multiplied by the matmul op with FP32
// accumulation. On the CPU this is the exact numerics of an FP8 tensor-core
// GEMM that accumulates in FP32: the dequantised values are exactly the
// products code * scale_inv the hardware multiplies (blockwise: each tile's
// power-of-two scale is applied to its own stretch of K, which is what a
// DeepSeek-style kernel does per K block). Built on the ops only, so it runs
// on either backend; a native FP8 kernel (cuBLASLt) replaces it on GPUs later.
//
// The FP8 linear layer (layers/fp8_linear.h) uses the quantise-and-read-back
// steps below directly: it chooses its scales itself (delayed state, or a
// current amax reduced over the ranks) and multiplies with the matmul op's
// transpose flags, so each tensor is quantised once in its stored layout.
#pragma once

#include <cstddef>

#include "runtime/context.h"
#include "runtime/fp8_scaling.h"
#include "runtime/ops.h"

namespace lintrain {

// One operand, (rows, K) row-major with K the reduction dimension.
struct Fp8Operand {
  Fp8Format format = Fp8Format::E4M3;
  float scale = 1.0f;     // delayed: the state's scale() (current and blockwise choose their own)
  int tile_rows = 1;      // blockwise: 1 x 128 for activations and gradients,
  int tile_cols = 128;    //            128 x 128 for weights
};

// What the quantisation saw: each operand's amax (what a delayed recipe
// records; not computed for blockwise, which takes its amaxes per tile) and
// the per-tensor scale used (1 for blockwise).
struct Fp8GemmReport {
  Fp8Amax a_amax, b_amax;
  float a_scale = 1.0f, b_scale = 1.0f;
};

// C (M, N) = dequant(quant(A)) (M, K) @ dequant(quant(B))^T (K, N), with
// A (M, K) and B (N, K) (a linear layer: y = x W^T). Quantisation saturates;
// its counts are accumulated into `counts` (on ctx.device; null = not
// wanted). `margin` is the current recipe's (delayed scales already hold
// theirs). Needs fp8_gemm_emulated_scratch_bytes.
// deq (n) = dequant(quant(x)) with one per-tensor scale: fp8(x * scale),
// saturating, read back times 1 / scale. Counts accumulated as fp8_encode's.
// Needs fp8_fake_quantize_scratch_bytes (the codes).
void fp8_fake_quantize(const Context& ctx, float* deq, const float* x, int64_t n, float scale, Fp8Format format,
                       Fp8Counts* counts);
size_t fp8_fake_quantize_scratch_bytes(int64_t n);

// deq (rows, cols) = dequant(quant(x)) in tiles of tile_rows x tile_cols,
// each with its power-of-two scale (fp8_quantize_blockwise). Needs
// fp8_fake_quantize_blockwise_scratch_bytes (the codes and tile scales).
void fp8_fake_quantize_blockwise(const Context& ctx, float* deq, const float* x, int rows, int cols, int tile_rows,
                                 int tile_cols, Fp8Format format, Fp8Counts* counts);
size_t fp8_fake_quantize_blockwise_scratch_bytes(int rows, int cols, int tile_rows, int tile_cols);

Fp8GemmReport fp8_gemm_emulated(const Context& ctx, Fp8Recipe recipe, float* C, const float* A, const Fp8Operand& a,
                                const float* B, const Fp8Operand& b, int M, int N, int K, Fp8Counts* counts,
                                int margin = 0);
size_t fp8_gemm_emulated_scratch_bytes(Device device, Fp8Recipe recipe, int M, int N, int K, const Fp8Operand& a,
                                       const Fp8Operand& b);

}  // namespace lintrain
