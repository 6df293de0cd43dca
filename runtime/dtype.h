// Element types and their conversions. f32 is the compute and master-weight
// type, bf16 the low-precision compute type, fp8 (e4m3, e5m2) the GEMM operand
// types of FP8 training; i32/u16/u32 hold token ids; i64/u64 the counters
// and RNG words of checkpointed run state; f64 the sums of statistics the
// collectives reduce (parallel/communicator.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace lintrain {

// New types go at the end: the values of the others stay what they were.
enum class DType : uint8_t { F32, BF16, F8E4M3, F8E5M2, I32, U16, U32, I64, U64, F64 };

size_t dtype_size(DType t);
const char* dtype_name(DType t);  // "f32", "bf16", ...
// Parses a dtype name; throws lintrain::Error naming the valid choices.
DType dtype_from_name(const std::string& name);

// bf16: the upper 16 bits of an IEEE float, rounded to nearest even. NaN stays
// NaN (quiet), infinities stay infinite.
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
inline float bf16_to_f32(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
// Rounds a float to the nearest bf16 value and returns it as a float.
inline float round_to_bf16(float f) { return bf16_to_f32(f32_to_bf16(f)); }

// FP8 (OCP 8-bit floating point spec). e4m3: bias 7, max 448, no infinities,
// NaN = S.1111.111. e5m2: bias 15, max 57344, IEEE-like inf/NaN. Conversion
// from f32 rounds to nearest even and saturates to the format's max finite
// value (the convention of scaled FP8 training, where overflow means the
// scale was stale, not that the value is infinite). These are
// runtime/fp8_math.h's conversions (saturating), which also has the
// non-saturating mode and the exact rules.
uint8_t f32_to_e4m3(float f);
float e4m3_to_f32(uint8_t b);
uint8_t f32_to_e5m2(float f);
float e5m2_to_f32(uint8_t b);
constexpr float kE4M3Max = 448.0f;
constexpr float kE5M2Max = 57344.0f;

}  // namespace lintrain
