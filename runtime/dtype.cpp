#include "runtime/dtype.h"

#include <cmath>

#include "runtime/error.h"

namespace lintrain {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::BF16: return 2;
    case DType::F8E4M3: return 1;
    case DType::F8E5M2: return 1;
    case DType::I32: return 4;
    case DType::U16: return 2;
    case DType::U32: return 4;
    case DType::I64: return 8;
    case DType::U64: return 8;
    case DType::F64: return 8;
  }
  return 0;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "f32";
    case DType::BF16: return "bf16";
    case DType::F8E4M3: return "f8e4m3";
    case DType::F8E5M2: return "f8e5m2";
    case DType::I32: return "i32";
    case DType::U16: return "u16";
    case DType::U32: return "u32";
    case DType::I64: return "i64";
    case DType::U64: return "u64";
    case DType::F64: return "f64";
  }
  return "?";
}

DType dtype_from_name(const std::string& n) {
  for (DType t : {DType::F32, DType::BF16, DType::F8E4M3, DType::F8E5M2, DType::I32, DType::U16,
                  DType::U32, DType::I64, DType::U64, DType::F64}) {
    if (n == dtype_name(t)) return t;
  }
  throw Error(str_cat("[dtype] unknown dtype '", n,
                      "'; valid: f32, bf16, f8e4m3, f8e5m2, i32, u16, u32, i64, u64, f64"));
}

namespace {

// Generic round-to-nearest-even encoder for a sign/exponent/mantissa format
// with `ebits` exponent bits, `mbits` mantissa bits and the given max finite
// value. Values past max saturate; subnormals are handled exactly.
uint8_t encode_fp8(float f, int ebits, int mbits, float max_finite, uint8_t nan_code) {
  if (std::isnan(f)) return nan_code;
  const uint8_t sign = std::signbit(f) ? 0x80 : 0x00;
  float a = std::fabs(f);
  if (a >= max_finite) {
    // Saturate: the largest finite code (all exponent/mantissa bits of max).
    int bias = (1 << (ebits - 1)) - 1;
    int e;
    float m = std::frexp(max_finite, &e);  // max = m * 2^e, m in [0.5,1)
    int exp_field = e - 1 + bias;
    int mant = static_cast<int>(std::lround((m * 2.0f - 1.0f) * (1 << mbits)));
    return static_cast<uint8_t>(sign | (exp_field << mbits) | mant);
  }
  const int bias = (1 << (ebits - 1)) - 1;
  const int min_normal_exp = 1 - bias;
  if (a == 0.0f) return sign;
  int e;
  std::frexp(a, &e);
  int exp_unbiased = e - 1;  // a = 1.x * 2^exp_unbiased
  if (exp_unbiased < min_normal_exp) exp_unbiased = min_normal_exp;  // subnormal range
  // Quantum at this exponent; rint rounds half to even in the default mode.
  const float quantum = std::ldexp(1.0f, exp_unbiased - mbits);
  float q = std::nearbyint(a / quantum);  // integer count of quanta
  int qi = static_cast<int>(q);
  if (qi >= (2 << mbits)) {  // rounded up into the next binade
    qi >>= 1;
    exp_unbiased += 1;
  }
  int exp_field, mant;
  if (qi < (1 << mbits)) {  // subnormal
    exp_field = 0;
    mant = qi;
  } else {
    exp_field = exp_unbiased + bias;
    mant = qi - (1 << mbits);
  }
  return static_cast<uint8_t>(sign | (exp_field << mbits) | mant);
}

float decode_fp8(uint8_t b, int ebits, int mbits) {
  const int bias = (1 << (ebits - 1)) - 1;
  const int exp_field = (b >> mbits) & ((1 << ebits) - 1);
  const int mant = b & ((1 << mbits) - 1);
  float v;
  if (exp_field == 0) {
    v = std::ldexp(static_cast<float>(mant), 1 - bias - mbits);
  } else {
    v = std::ldexp(1.0f + static_cast<float>(mant) / (1 << mbits), exp_field - bias);
  }
  return (b & 0x80) ? -v : v;
}

}  // namespace

uint8_t f32_to_e4m3(float f) { return encode_fp8(f, 4, 3, kE4M3Max, 0x7f); }
float e4m3_to_f32(uint8_t b) {
  if ((b & 0x7f) == 0x7f) return std::nanf("");
  return decode_fp8(b, 4, 3);
}
uint8_t f32_to_e5m2(float f) {
  if (std::isinf(f)) return f > 0 ? 0x7b : 0xfb;  // saturate, see header
  return encode_fp8(f, 5, 2, kE5M2Max, 0x7f);
}
float e5m2_to_f32(uint8_t b) {
  const int exp_field = (b >> 2) & 0x1f;
  if (exp_field == 0x1f) {
    if ((b & 0x3) == 0) return (b & 0x80) ? -INFINITY : INFINITY;
    return std::nanf("");
  }
  return decode_fp8(b, 5, 2);
}

}  // namespace lintrain
