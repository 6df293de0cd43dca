// Argument checks and device dispatch of the FP8 ops (runtime/ops.h, the
// section "FP8 numerics").
#include <cmath>
#include <initializer_list>

#include "runtime/backend.h"
#include "runtime/error.h"
#include "runtime/ops.h"

namespace lintrain {

namespace {

bool on_cpu(const Context& ctx) { return ctx.device == Device::CPU; }

void check_elements(const char* op, int64_t n, std::initializer_list<const void*> pointers) {
  LT_CHECK(n >= 0, "[", op, "] needs n >= 0 values, got n = ", n);
  if (n == 0) return;
  int i = 0;
  for (const void* p : pointers) {
    LT_CHECK(p != nullptr, "[", op, "] argument ", i, " is null (n = ", n, ")");
    ++i;
  }
}

void check_scale(const char* op, const char* what, float s) {
  LT_CHECK(std::isfinite(s) && s > 0.0f, "[", op, "] ", what, " must be finite and > 0, got ", s);
}

void check_tiles(const char* op, int rows, int cols, int tile_rows, int tile_cols) {
  LT_CHECK(rows >= 0 && cols >= 0, "[", op, "] bad shape (", rows, ", ", cols, ")");
  LT_CHECK(tile_rows >= 1 && tile_cols >= 1, "[", op, "] tiles must be at least 1 x 1, got ", tile_rows, " x ",
           tile_cols);
}

}  // namespace

void fp8_encode(const Context& ctx, uint8_t* out, const float* in, int64_t n, float scale, Fp8Format format,
                bool saturate, Fp8Counts* counts) {
  check_elements("fp8_encode", n, {out, in});
  check_scale("fp8_encode", "scale", scale);
  if (n == 0) return;
  if (on_cpu(ctx)) cpu::fp8_encode(out, in, n, scale, format, saturate, counts);
  else cuda::fp8_encode(ctx.stream, out, in, n, scale, format, saturate, counts);
}

void fp8_decode(const Context& ctx, float* out, const uint8_t* in, int64_t n, float scale_inv, Fp8Format format) {
  check_elements("fp8_decode", n, {out, in});
  check_scale("fp8_decode", "scale_inv", scale_inv);
  if (n == 0) return;
  if (on_cpu(ctx)) cpu::fp8_decode(out, in, n, scale_inv, format);
  else cuda::fp8_decode(ctx.stream, out, in, n, scale_inv, format);
}

Fp8Amax fp8_amax(const Context& ctx, const float* x, int64_t n) {
  check_elements("fp8_amax", n, {x});
  if (n == 0) return {};
  if (on_cpu(ctx)) return cpu::fp8_amax(x, n);
  return cuda::fp8_amax(ctx.stream, ctx.arena("fp8_amax"), x, n);
}

size_t fp8_amax_scratch_bytes(Device device, int64_t n) {
  return device == Device::CPU ? 0 : cuda::fp8_amax_scratch_bytes(n);
}

int64_t fp8_blockwise_scale_count(int rows, int cols, int tile_rows, int tile_cols) {
  check_tiles("fp8_blockwise_scale_count", rows, cols, tile_rows, tile_cols);
  return ((static_cast<int64_t>(rows) + tile_rows - 1) / tile_rows) *
         ((static_cast<int64_t>(cols) + tile_cols - 1) / tile_cols);
}

void fp8_quantize_blockwise(const Context& ctx, uint8_t* out, float* scale_inv, const float* in, int rows,
                            int cols, int tile_rows, int tile_cols, Fp8Format format, Fp8Counts* counts) {
  check_tiles("fp8_quantize_blockwise", rows, cols, tile_rows, tile_cols);
  check_elements("fp8_quantize_blockwise", static_cast<int64_t>(rows) * cols, {out, scale_inv, in});
  if (rows == 0 || cols == 0) return;
  if (on_cpu(ctx)) cpu::fp8_quantize_blockwise(out, scale_inv, in, rows, cols, tile_rows, tile_cols, format, counts);
  else cuda::fp8_quantize_blockwise(ctx.stream, out, scale_inv, in, rows, cols, tile_rows, tile_cols, format, counts);
}

void fp8_dequantize_blockwise(const Context& ctx, float* out, const uint8_t* in, const float* scale_inv, int rows,
                              int cols, int tile_rows, int tile_cols, Fp8Format format) {
  check_tiles("fp8_dequantize_blockwise", rows, cols, tile_rows, tile_cols);
  check_elements("fp8_dequantize_blockwise", static_cast<int64_t>(rows) * cols, {out, in, scale_inv});
  if (rows == 0 || cols == 0) return;
  if (on_cpu(ctx)) cpu::fp8_dequantize_blockwise(out, in, scale_inv, rows, cols, tile_rows, tile_cols, format);
  else cuda::fp8_dequantize_blockwise(ctx.stream, out, in, scale_inv, rows, cols, tile_rows, tile_cols, format);
}

}  // namespace lintrain
