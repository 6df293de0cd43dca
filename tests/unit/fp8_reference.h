// A naive float64 reference of the FP8 formats, written from the format
// definitions (OCP 8-bit floating point, the rules listed at the top of
// runtime/fp8_math.h) and sharing no code with runtime/fp8_math.h: decoding
// is the textbook (-1)^s * 2^(e - bias) * (1 + m / 2^mbits) formula, and
// encoding searches the table of all 256 decoded values for the nearest one.
// Used by test_fp8_math.cpp and tests/cuda_host/test_fp8_cuda_host.cu.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "runtime/fp8_math.h"  // Fp8Format (the enum only)
#include "runtime/rng.h"

namespace lintrain::test {

struct Fp8Spec {
  int ebits, mbits, bias;
  bool ieee_specials;  // E5M2: exponent all ones = inf / NaN; E4M3: only S.1111.111 is NaN
};
inline Fp8Spec fp8_spec(Fp8Format f) {
  return f == Fp8Format::E4M3 ? Fp8Spec{4, 3, 7, false} : Fp8Spec{5, 2, 15, true};
}

// The value of a code in double (NaN for the NaN codes).
inline double fp8_reference_decode(uint8_t code, Fp8Format f) {
  const Fp8Spec s = fp8_spec(f);
  const int sign = code >> 7;
  const int e = (code >> s.mbits) & ((1 << s.ebits) - 1);
  const int m = code & ((1 << s.mbits) - 1);
  const int e_all_ones = (1 << s.ebits) - 1;
  double v;
  if (s.ieee_specials && e == e_all_ones) {
    v = m == 0 ? std::numeric_limits<double>::infinity() : std::numeric_limits<double>::quiet_NaN();
  } else if (!s.ieee_specials && e == e_all_ones && m == (1 << s.mbits) - 1) {
    v = std::numeric_limits<double>::quiet_NaN();
  } else if (e == 0) {
    v = std::pow(2.0, 1 - s.bias) * (m / std::pow(2.0, s.mbits));
  } else {
    v = std::pow(2.0, e - s.bias) * (1.0 + m / std::pow(2.0, s.mbits));
  }
  return sign ? -v : v;
}

// The values of the non-negative finite codes 0, 1, ... in order, then the
// grid point one step past the largest.
inline std::vector<double> fp8_reference_grid(Fp8Format f) {
  std::vector<double> values;
  for (int c = 0; c < 128; ++c) {
    const double v = fp8_reference_decode(static_cast<uint8_t>(c), f);
    if (!std::isfinite(v)) break;
    values.push_back(v);
  }
  const size_t n = values.size();
  values.push_back(values[n - 1] + (values[n - 1] - values[n - 2]));
  return values;
}

// float -> code: nearest finite value, ties to the code with an even
// mantissa (even code), signed zeros kept; past the largest finite value
// (beyond the midpoint to the next power of the grid, ties to even there
// too): saturate -> +-max, else NaN (E4M3) or +-inf (E5M2); NaN -> 0x7f.
inline uint8_t fp8_reference_encode(float x, Fp8Format f, bool saturate) {
  if (std::isnan(x)) return 0x7f;
  const uint8_t sign = std::signbit(x) ? 0x80 : 0x00;
  const double a = std::fabs(static_cast<double>(x));
  // The non-negative finite codes in increasing value (0 .. max_code), and
  // one more grid point past max (what a wider exponent range would hold),
  // so rounding near the top follows the same rule as everywhere else.
  static const std::vector<double> table[2] = {fp8_reference_grid(Fp8Format::E4M3),
                                               fp8_reference_grid(Fp8Format::E5M2)};
  const std::vector<double>& values = table[f == Fp8Format::E4M3 ? 0 : 1];
  const int max_code = static_cast<int>(values.size()) - 2;
  const uint8_t overflow = saturate ? static_cast<uint8_t>(max_code) : (f == Fp8Format::E4M3 ? 0x7f : 0x7c);
  if (a > values.back()) return sign | overflow;  // infinities included
  int lo = 0;
  while (lo + 1 < static_cast<int>(values.size()) && values[lo + 1] <= a) ++lo;
  int pick = lo;
  if (values[lo] != a) {
    const double dlo = a - values[lo], dhi = values[lo + 1] - a;
    pick = dlo < dhi ? lo : dhi < dlo ? lo + 1 : (lo % 2 == 0 ? lo : lo + 1);
  }
  if (pick > max_code) return sign | overflow;
  return static_cast<uint8_t>(sign | pick);
}

// The inputs every encoder comparison runs on: each code's value, the
// midpoints between neighbouring values and the floats just either side of
// them, the edges (max, max + half a step, the subnormal edges, float
// subnormals, +-0, +-inf, NaN), all with both signs.
inline std::vector<float> fp8_boundary_inputs(Fp8Format f) {
  const std::vector<double> pos = fp8_reference_grid(f);
  std::vector<float> out;
  auto add = [&](double v) {
    const float fv = static_cast<float>(v);
    for (float s : {1.0f, -1.0f}) {
      out.push_back(s * fv);
      out.push_back(s * std::nextafter(fv, 0.0f));
      out.push_back(s * std::nextafter(fv, std::numeric_limits<float>::infinity()));
    }
  };
  for (size_t i = 0; i < pos.size(); ++i) {
    add(pos[i]);
    if (i + 1 < pos.size()) add(0.5 * (pos[i] + pos[i + 1]));
  }
  add(pos[1] / 2);  // half the smallest subnormal
  add(pos[1] / 4);
  add(2 * pos.back());
  for (float v : {0.0f, std::numeric_limits<float>::denorm_min(), std::numeric_limits<float>::min(),
                  std::numeric_limits<float>::max(), std::numeric_limits<float>::infinity()}) {
    out.push_back(v);
    out.push_back(-v);
  }
  out.push_back(std::numeric_limits<float>::quiet_NaN());
  out.push_back(-std::numeric_limits<float>::quiet_NaN());
  uint32_t snan_bits = 0x7f800001u;  // a signalling NaN
  float snan;
  std::memcpy(&snan, &snan_bits, 4);
  out.push_back(snan);
  return out;
}

// Random floats: half uniform over all 2^32 bit patterns (every exponent,
// NaN, inf, float subnormals), half log-uniform over the format's range and
// a little past it, with random signs.
inline std::vector<float> fp8_random_floats(size_t n, Fp8Format f, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> v(n);
  const double lo = f == Fp8Format::E4M3 ? -12 : -19, hi = f == Fp8Format::E4M3 ? 10 : 17;
  for (size_t i = 0; i < n; ++i) {
    if (i % 2 == 0) {
      const uint32_t u = static_cast<uint32_t>(rng.next_u64());
      std::memcpy(&v[i], &u, 4);
    } else {
      const double x = std::exp2(lo + (hi - lo) * rng.uniform());
      v[i] = static_cast<float>(rng.uniform() < 0.5 ? -x : x);
    }
  }
  return v;
}

}  // namespace lintrain::test
