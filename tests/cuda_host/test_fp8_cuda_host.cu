// The FP8 and BF16 conversions against CUDA's own (cuda_fp8.h, cuda_bf16.h),
// through their host paths: nvcc compiles this file, the CPU runs it, no GPU
// is needed. Our encoder is the fp8_encode op on the CPU (runtime/fp8_math.h);
// CUDA's is __nv_cvt_float_to_fp8 in both saturation modes. Every boundary
// (tests/unit/fp8_reference.h) and a large random sample must give the same
// code; every code must decode to the value __nv_cvt_fp8_to_halfraw gives.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "runtime/dtype.h"
#include "runtime/ops.h"
#include "runtime/rng.h"
#include "tests/unit/cpu_context.h"
#include "tests/unit/fp8_reference.h"

using namespace lintrain;
using namespace lintrain::test;

namespace {

__nv_fp8_interpretation_t interpretation(Fp8Format f) { return f == Fp8Format::E4M3 ? __NV_E4M3 : __NV_E5M2; }
const char* name(Fp8Format f) { return f == Fp8Format::E4M3 ? "e4m3" : "e5m2"; }

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// Boundaries, then random floats: every bit pattern, and log-uniform over
// the formats' range with random signs (as test_fp8_math.cpp draws them).
std::vector<float> inputs(Fp8Format f, size_t n_random) {
  std::vector<float> v = fp8_boundary_inputs(f);
  // The other format's boundaries too: they are ordinary values here.
  const std::vector<float> other =
      fp8_boundary_inputs(f == Fp8Format::E4M3 ? Fp8Format::E5M2 : Fp8Format::E4M3);
  v.insert(v.end(), other.begin(), other.end());
  Rng rng(f == Fp8Format::E4M3 ? 101 : 102);
  for (size_t i = 0; i < n_random; ++i) {
    if (i % 2 == 0) {
      const uint32_t u = static_cast<uint32_t>(rng.next_u64());
      float x;
      std::memcpy(&x, &u, 4);
      v.push_back(x);
    } else {
      const double x = std::exp2(-20 + 38 * rng.uniform());
      v.push_back(static_cast<float>(rng.uniform() < 0.5 ? -x : x));
    }
  }
  return v;
}

}  // namespace

TEST(Fp8CudaHost, EncodeMatchesNvCvtFloatToFp8) {
  const Context& ctx = cpu_context();
  for (Fp8Format f : {Fp8Format::E4M3, Fp8Format::E5M2}) {
    const std::vector<float> xs = inputs(f, 2000000);
    std::vector<uint8_t> ours(xs.size());
    for (bool sat : {true, false}) {
      fp8_encode(ctx, ours.data(), xs.data(), static_cast<int64_t>(xs.size()), 1.0f, f, sat, nullptr);
      int bad = 0;
      for (size_t i = 0; i < xs.size(); ++i) {
        const uint8_t theirs = __nv_cvt_float_to_fp8(xs[i], sat ? __NV_SATFINITE : __NV_NOSAT, interpretation(f));
        if (theirs != ours[i] && ++bad <= 10)
          ADD_FAILURE() << name(f) << (sat ? " satfinite" : " nosat") << " x = " << xs[i] << " (0x" << std::hex
                        << bits(xs[i]) << "): cuda 0x" << int(theirs) << " ours 0x" << int(ours[i]) << std::dec;
        // And the float64 reference agrees with both (so a shared mistake would show).
        if (i < 4000) EXPECT_EQ(fp8_reference_encode(xs[i], f, sat), theirs) << xs[i];
      }
      EXPECT_EQ(bad, 0) << name(f) << (sat ? " satfinite" : " nosat") << " over " << xs.size() << " inputs";
    }
  }
}

// The op multiplies by the scale in f32 first: the same as converting the product.
TEST(Fp8CudaHost, ScaledEncodeMatchesConvertingTheProduct) {
  const Context& ctx = cpu_context();
  for (Fp8Format f : {Fp8Format::E4M3, Fp8Format::E5M2}) {
    const std::vector<float> xs = inputs(f, 200000);
    std::vector<uint8_t> ours(xs.size());
    const float scale = 3.7f;
    fp8_encode(ctx, ours.data(), xs.data(), static_cast<int64_t>(xs.size()), scale, f, true, nullptr);
    int bad = 0;
    for (size_t i = 0; i < xs.size(); ++i)
      bad += ours[i] != __nv_cvt_float_to_fp8(xs[i] * scale, __NV_SATFINITE, interpretation(f));
    EXPECT_EQ(bad, 0) << name(f);
  }
}

TEST(Fp8CudaHost, EveryCodeDecodesAsNvCvtFp8ToHalfraw) {
  const Context& ctx = cpu_context();
  for (Fp8Format f : {Fp8Format::E4M3, Fp8Format::E5M2}) {
    std::vector<uint8_t> codes(256);
    for (int c = 0; c < 256; ++c) codes[c] = static_cast<uint8_t>(c);
    std::vector<float> ours(256);
    fp8_decode(ctx, ours.data(), codes.data(), 256, 1.0f, f);
    for (int c = 0; c < 256; ++c) {
      const __half_raw hr = __nv_cvt_fp8_to_halfraw(static_cast<__nv_fp8_storage_t>(c), interpretation(f));
      const float theirs = __half2float(__half(hr));
      if (std::isnan(theirs)) {
        EXPECT_TRUE(std::isnan(ours[c])) << name(f) << " code " << c;
      } else {
        EXPECT_EQ(bits(ours[c]), bits(theirs)) << name(f) << " code " << c << ": cuda " << theirs << " ours " << ours[c];
      }
    }
  }
}

// BF16 (runtime/dtype.h, the bf16 compute mode's rounding) against
// __float2bfloat16_rn: the same bits for every non-NaN float tried, NaN for NaN.
TEST(Fp8CudaHost, Bf16RoundingMatchesFloat2Bfloat16Rn) {
  Rng rng(103);
  int bad = 0;
  for (int i = 0; i < 2000000; ++i) {
    const uint32_t u = static_cast<uint32_t>(rng.next_u64());
    float x;
    std::memcpy(&x, &u, 4);
    const __nv_bfloat16_raw theirs = __nv_bfloat16_raw(__float2bfloat16_rn(x));
    const uint16_t ours = f32_to_bf16(x);
    if (std::isnan(x)) {
      bad += !std::isnan(bf16_to_f32(ours)) || !std::isnan(bf16_to_f32(theirs.x));
    } else if (ours != theirs.x && ++bad <= 10) {
      ADD_FAILURE() << "x = " << x << " (0x" << std::hex << u << "): cuda 0x" << theirs.x << " ours 0x" << ours;
    }
  }
  EXPECT_EQ(bad, 0);
}
