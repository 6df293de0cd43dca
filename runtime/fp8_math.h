// The scalar FP8 conversions, shared by the CPU bodies (runtime/cpu/fp8.cpp)
// and the CUDA kernels (runtime/cuda/fp8.cu): one definition in integer
// arithmetic on the float's bits, compiled for the host and, under nvcc, for
// the device, so both backends agree bit for bit.
//
// Formats (OCP 8-bit floating point):
//   E4M3 ("fn"): 1 sign, 4 exponent (bias 7), 3 mantissa bits. Max 448
//                (S.1111.110), no infinities, NaN only S.1111.111. Smallest
//                subnormal 2^-9, smallest normal 2^-6.
//   E5M2:        1 sign, 5 exponent (bias 15), 2 mantissa bits. Max 57344
//                (S.11110.11), +-inf = S.11111.00, NaN = S.11111.{01,10,11}.
//                Smallest subnormal 2^-16, smallest normal 2^-14.
//
// float -> fp8 is the host path of CUDA's __nv_cvt_float_to_fp8
// (cuda_fp8.hpp), which the test tests/cuda_host/test_fp8_cuda_host.cu
// checks code for code:
//   - round to nearest, ties to even, with fp8 subnormals (values below the
//     smallest normal round onto the subnormal grid; at or below half the
//     smallest subnormal they become a zero of the input's sign; float
//     subnormal inputs are far below that and become signed zeros);
//   - a NaN input gives 0x7f (positive: the sign is dropped), in both formats;
//   - a result past the max finite value (|x| > 464 for E4M3, |x| >= 61440 for
//     E5M2, infinities included): saturate -> +-max (0x7e / 0x7b with the
//     sign); no saturation -> NaN with the sign (E4M3, 0x7f / 0xff) or +-inf
//     (E5M2, 0x7c / 0xfc).
// fp8 -> float is exact (every fp8 value is a float).
#pragma once

#include <cstdint>
#include <cstring>

#if !defined(LT_HOST_DEVICE)
#if defined(__CUDACC__)
#define LT_HOST_DEVICE __host__ __device__
#else
#define LT_HOST_DEVICE
#endif
#endif

namespace lintrain {

enum class Fp8Format : uint8_t { E4M3, E5M2 };

namespace fp8_math {

LT_HOST_DEVICE inline uint32_t float_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
#endif
}

LT_HOST_DEVICE inline float bits_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, 4);
  return f;
#endif
}

LT_HOST_DEVICE constexpr int mantissa_bits(Fp8Format f) { return f == Fp8Format::E4M3 ? 3 : 2; }
LT_HOST_DEVICE constexpr int exponent_bias(Fp8Format f) { return f == Fp8Format::E4M3 ? 7 : 15; }
// The code (without sign) of the largest finite value.
LT_HOST_DEVICE constexpr uint32_t max_code(Fp8Format f) { return f == Fp8Format::E4M3 ? 0x7eu : 0x7bu; }
LT_HOST_DEVICE constexpr float max_finite(Fp8Format f) { return f == Fp8Format::E4M3 ? 448.0f : 57344.0f; }

// 2^k as a float for k in [-126, 127] (a normal float, exact).
LT_HOST_DEVICE inline float pow2(int k) { return bits_float(static_cast<uint32_t>(k + 127) << 23); }

LT_HOST_DEVICE inline bool is_nan(float x) { return (float_bits(x) & 0x7fffffffu) > 0x7f800000u; }
LT_HOST_DEVICE inline bool is_finite(float x) { return (float_bits(x) & 0x7fffffffu) < 0x7f800000u; }

// float -> fp8 code (see the top of the file for the rules).
LT_HOST_DEVICE inline uint8_t encode(float x, Fp8Format f, bool saturate) {
  const uint32_t u = float_bits(x);
  const uint32_t sign = (u >> 24) & 0x80u;
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return 0x7fu;                       // NaN
  const uint32_t overflow = saturate ? max_code(f) : (f == Fp8Format::E4M3 ? 0x7fu : 0x7cu);
  if (a == 0x7f800000u) return static_cast<uint8_t>(sign | overflow);  // +-inf
  if (a < 0x00800000u) return static_cast<uint8_t>(sign);  // zero or float subnormal: below every fp8 value
  const int mb = mantissa_bits(f);
  const int emin = 1 - exponent_bias(f);  // exponent of the smallest normal
  const int e = static_cast<int>(a >> 23) - 127;
  const uint32_t sig = (a & 0x7fffffu) | 0x800000u;  // x = sig * 2^(e - 23)
  const int E = e > emin ? e : emin;                 // exponent of the fp8 grid x falls on
  const int shift = 23 - mb + (E - e);               // sig >> shift = quanta of 2^(E - mb)
  uint32_t r = 0;
  if (shift < 32) {
    r = sig >> shift;
    const uint32_t rem = sig & ((1u << shift) - 1u), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1u))) ++r;  // to nearest, ties to even
  }
  // Subnormal (E = emin, r < 2^mb) and normal codes, a carry into the next
  // binade included, are both ((E - emin) << mb) + r.
  const uint32_t code = (static_cast<uint32_t>(E - emin) << mb) + r;
  return static_cast<uint8_t>(sign | (code > max_code(f) ? overflow : code));
}

// fp8 code -> float, exact. NaN codes give a quiet NaN of the code's sign.
LT_HOST_DEVICE inline float decode(uint8_t b, Fp8Format f) {
  const uint32_t sign = static_cast<uint32_t>(b & 0x80u) << 24;
  const int mb = mantissa_bits(f);
  const uint32_t mag = b & 0x7fu;
  const uint32_t exp = mag >> mb, man = mag & ((1u << mb) - 1u);
  if (f == Fp8Format::E4M3) {
    if (mag == 0x7fu) return bits_float(sign | 0x7fc00000u);
  } else if (exp == 0x1fu) {
    return bits_float(sign | (man == 0 ? 0x7f800000u : 0x7fc00000u));
  }
  if (exp == 0) {  // subnormal: man * 2^(emin - mb); a zero keeps its sign
    const float v = static_cast<float>(man) * pow2(1 - exponent_bias(f) - mb);
    return bits_float(sign | float_bits(v));
  }
  const uint32_t fexp = exp - static_cast<uint32_t>(exponent_bias(f)) + 127u;
  return bits_float(sign | (fexp << 23) | (man << (23 - mb)));
}

// What encoding x (scaled to y = x * scale, then to `code`) lost, as the
// fields of Fp8Counts (runtime/ops.h): bit 0 saturated (x finite, |y| past
// the max), bit 1 flushed (x finite and nonzero, code a zero), bit 2
// nonfinite (x NaN or +-inf).
constexpr uint32_t kLostSaturated = 1u, kLostFlushed = 2u, kLostNonfinite = 4u;
LT_HOST_DEVICE inline uint32_t encode_loss(float x, float y, uint8_t code, Fp8Format f) {
  if (!is_finite(x)) return kLostNonfinite;
  const float ay = bits_float(float_bits(y) & 0x7fffffffu);
  if (ay > max_finite(f)) return kLostSaturated;
  return (x != 0.0f && (code & 0x7fu) == 0) ? kLostFlushed : 0u;
}

// The power-of-two scale of blockwise quantisation: 2^k with the largest k
// such that amax * 2^k <= max_finite(f), i.e. k = floor(log2(max / amax)),
// found from the exponents and significands (no division, so no rounding),
// clamped to [-126, 127]. A block whose amax is 0 (or not finite) gets 1.
LT_HOST_DEVICE inline float pow2_scale(float amax, Fp8Format f) {
  uint32_t a = float_bits(amax) & 0x7fffffffu;
  if (a == 0 || a >= 0x7f800000u) return 1.0f;
  int ea;
  uint32_t ma;
  if (a >= 0x00800000u) {
    ea = static_cast<int>(a >> 23) - 127;
    ma = (a & 0x7fffffu) | 0x800000u;
  } else {  // float subnormal: normalise the significand
    ea = -126;
    ma = a;
    while (ma < 0x800000u) {
      ma <<= 1;
      --ea;
    }
  }
  const int em = f == Fp8Format::E4M3 ? 8 : 15;  // 448 = 1.75 * 2^8, 57344 = 1.75 * 2^15
  const uint32_t mm = 0xe00000u;                 // 1.75 as a 24-bit significand
  int k = em - ea - (mm < ma ? 1 : 0);
  if (k < -126) k = -126;
  if (k > 127) k = 127;
  return pow2(k);
}

}  // namespace fp8_math
}  // namespace lintrain
