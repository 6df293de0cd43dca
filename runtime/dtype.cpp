#include "runtime/dtype.h"

#include "runtime/error.h"
#include "runtime/fp8_math.h"

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

// One definition of the FP8 conversions: runtime/fp8_math.h (the rules of
// cuda_fp8.h), in its saturating mode.
uint8_t f32_to_e4m3(float f) { return fp8_math::encode(f, Fp8Format::E4M3, /*saturate=*/true); }
float e4m3_to_f32(uint8_t b) { return fp8_math::decode(b, Fp8Format::E4M3); }
uint8_t f32_to_e5m2(float f) { return fp8_math::encode(f, Fp8Format::E5M2, /*saturate=*/true); }
float e5m2_to_f32(uint8_t b) { return fp8_math::decode(b, Fp8Format::E5M2); }

}  // namespace lintrain
