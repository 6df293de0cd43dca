// The emulated FP8 GEMM (runtime/fp8_gemm.h): quantise, dequantise, matmul.
#include "runtime/fp8_gemm.h"

#include "runtime/arena.h"
#include "runtime/error.h"

namespace lintrain {

namespace {

// One operand (rows, K): quantised and read back into `deq`, per the recipe.
void quantise_operand(const Context& ctx, Fp8Recipe recipe, float* deq, const float* x, const Fp8Operand& op,
                      int rows, int K, Fp8Counts* counts, int margin, Fp8Amax* amax_out, float* scale_out) {
  if (recipe == Fp8Recipe::Blockwise) {
    fp8_fake_quantize_blockwise(ctx, deq, x, rows, K, op.tile_rows, op.tile_cols, op.format, counts);
    *scale_out = 1.0f;
    return;
  }
  const int64_t n = static_cast<int64_t>(rows) * K;
  *amax_out = fp8_amax(ctx, x, n);
  const float scale = recipe == Fp8Recipe::Current ? fp8_current_scale(*amax_out, op.format, margin) : op.scale;
  fp8_fake_quantize(ctx, deq, x, n, scale, op.format, counts);
  *scale_out = scale;
}

size_t operand_bytes(Device device, Fp8Recipe recipe, int rows, int K, const Fp8Operand& op) {
  const int64_t n = static_cast<int64_t>(rows) * K;
  size_t bytes = arena_round(static_cast<size_t>(n)) + arena_round(static_cast<size_t>(n) * sizeof(float));
  if (recipe == Fp8Recipe::Blockwise)
    bytes += arena_round(static_cast<size_t>(fp8_blockwise_scale_count(rows, K, op.tile_rows, op.tile_cols)) *
                         sizeof(float));
  else
    bytes += fp8_amax_scratch_bytes(device, n);
  return bytes;
}

}  // namespace

void fp8_fake_quantize(const Context& ctx, float* deq, const float* x, int64_t n, float scale, Fp8Format format,
                       Fp8Counts* counts) {
  if (n == 0) return;
  ScratchScope scratch(ctx.arena("fp8_fake_quantize"));
  uint8_t* codes = scratch.take<uint8_t>(static_cast<size_t>(n), "fp8_fake_quantize");
  fp8_encode(ctx, codes, x, n, scale, format, /*saturate=*/true, counts);
  fp8_decode(ctx, deq, codes, n, 1.0f / scale, format);
}

size_t fp8_fake_quantize_scratch_bytes(int64_t n) { return arena_round(static_cast<size_t>(n)); }

void fp8_fake_quantize_blockwise(const Context& ctx, float* deq, const float* x, int rows, int cols, int tile_rows,
                                 int tile_cols, Fp8Format format, Fp8Counts* counts) {
  if (rows == 0 || cols == 0) return;
  ScratchScope scratch(ctx.arena("fp8_fake_quantize_blockwise"));
  uint8_t* codes = scratch.take<uint8_t>(static_cast<size_t>(rows) * cols, "fp8_fake_quantize_blockwise");
  float* scale_inv = scratch.take<float>(
      static_cast<size_t>(fp8_blockwise_scale_count(rows, cols, tile_rows, tile_cols)), "fp8_fake_quantize_blockwise");
  fp8_quantize_blockwise(ctx, codes, scale_inv, x, rows, cols, tile_rows, tile_cols, format, counts);
  fp8_dequantize_blockwise(ctx, deq, codes, scale_inv, rows, cols, tile_rows, tile_cols, format);
}

size_t fp8_fake_quantize_blockwise_scratch_bytes(int rows, int cols, int tile_rows, int tile_cols) {
  return arena_round(static_cast<size_t>(rows) * cols) +
         arena_round(static_cast<size_t>(fp8_blockwise_scale_count(rows, cols, tile_rows, tile_cols)) * sizeof(float));
}

Fp8GemmReport fp8_gemm_emulated(const Context& ctx, Fp8Recipe recipe, float* C, const float* A, const Fp8Operand& a,
                                const float* B, const Fp8Operand& b, int M, int N, int K, Fp8Counts* counts,
                                int margin) {
  LT_CHECK(M >= 0 && N >= 0 && K >= 0, "[fp8_gemm_emulated] bad shape M = ", M, ", N = ", N, ", K = ", K);
  Fp8GemmReport report;
  if (M == 0 || N == 0) return report;
  ScratchScope scratch(ctx.arena("fp8_gemm_emulated"));
  float* a_deq = scratch.take<float>(static_cast<size_t>(M) * K, "fp8_gemm_emulated");
  float* b_deq = scratch.take<float>(static_cast<size_t>(N) * K, "fp8_gemm_emulated");
  if (K > 0) {
    quantise_operand(ctx, recipe, a_deq, A, a, M, K, counts, margin, &report.a_amax, &report.a_scale);
    quantise_operand(ctx, recipe, b_deq, B, b, N, K, counts, margin, &report.b_amax, &report.b_scale);
  }
  matmul(ctx, /*trans_a=*/false, /*trans_b=*/true, M, N, K, 1.0f, a_deq, K, b_deq, K, 0.0f, C, N);
  return report;
}

size_t fp8_gemm_emulated_scratch_bytes(Device device, Fp8Recipe recipe, int M, int N, int K, const Fp8Operand& a,
                                       const Fp8Operand& b) {
  // The two dequantised operands come first and stay; each operand's codes
  // and scales follow (the amax scratch is taken and given back inside).
  return operand_bytes(device, recipe, M, K, a) + operand_bytes(device, recipe, N, K, b);
}

}  // namespace lintrain
