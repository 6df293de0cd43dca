// The FP8 conversions (runtime/fp8_math.h and the ops of runtime/ops.h,
// "FP8 numerics") against the float64 reference of tests/unit/fp8_reference.h:
// every code's value, the encoder on every boundary and a large random
// sample in both saturation modes, the counts, the amax, blockwise
// quantisation. The CUDA bodies bit for bit against the CPU's when a GPU is
// present (test_ops_fp8.cpp). (The encoder against cuda_fp8.h itself:
// tests/cuda_host.)
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "runtime/device.h"
#include "runtime/dtype.h"
#include "runtime/error.h"
#include "runtime/fp8_math.h"
#include "runtime/ops.h"
#include "runtime/rng.h"
#include "runtime/tensor.h"
#include "tests/unit/cpu_context.h"
#include "tests/unit/fp8_reference.h"

using namespace lintrain;
using namespace lintrain::test;

namespace {

constexpr Fp8Format kFormats[] = {Fp8Format::E4M3, Fp8Format::E5M2};

const char* name(Fp8Format f) { return f == Fp8Format::E4M3 ? "e4m3" : "e5m2"; }

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

}  // namespace

// Every one of the 256 codes decodes to the value the format definition
// gives (float64, exact in f32), its sign included; NaN codes to NaN.
TEST(Fp8Math, EveryCodeDecodesToItsValue) {
  for (Fp8Format f : kFormats) {
    int nans = 0, infs = 0;
    for (int c = 0; c < 256; ++c) {
      const double want = fp8_reference_decode(static_cast<uint8_t>(c), f);
      const float got = fp8_math::decode(static_cast<uint8_t>(c), f);
      if (std::isnan(want)) {
        EXPECT_TRUE(std::isnan(got)) << name(f) << " code " << c;
        ++nans;
        continue;
      }
      infs += std::isinf(want);
      EXPECT_EQ(bits(got), bits(static_cast<float>(want))) << name(f) << " code " << c << " want " << want;
    }
    // The formats' specials: E4M3 has 2 NaN codes and no inf; E5M2 6 NaNs, 2 infs.
    EXPECT_EQ(nans, f == Fp8Format::E4M3 ? 2 : 6) << name(f);
    EXPECT_EQ(infs, f == Fp8Format::E4M3 ? 0 : 2) << name(f);
  }
  // Anchors from the spec, independent of both: max, min normal, min subnormal.
  EXPECT_EQ(fp8_math::decode(0x7e, Fp8Format::E4M3), 448.0f);
  EXPECT_EQ(fp8_math::decode(0x08, Fp8Format::E4M3), std::ldexp(1.0f, -6));
  EXPECT_EQ(fp8_math::decode(0x01, Fp8Format::E4M3), std::ldexp(1.0f, -9));
  EXPECT_EQ(fp8_math::decode(0x7b, Fp8Format::E5M2), 57344.0f);
  EXPECT_EQ(fp8_math::decode(0x04, Fp8Format::E5M2), std::ldexp(1.0f, -14));
  EXPECT_EQ(fp8_math::decode(0x01, Fp8Format::E5M2), std::ldexp(1.0f, -16));
  EXPECT_EQ(fp8_math::decode(0xfc, Fp8Format::E5M2), -std::numeric_limits<float>::infinity());
}

TEST(Fp8Math, EncodeMatchesReferenceOnBoundariesAndRandomSample) {
  for (Fp8Format f : kFormats) {
    std::vector<float> xs = fp8_boundary_inputs(f);
    const std::vector<float> sample = fp8_random_floats(400000, f, f == Fp8Format::E4M3 ? 1 : 2);
    xs.insert(xs.end(), sample.begin(), sample.end());
    for (bool sat : {true, false}) {
      int bad = 0;
      for (float x : xs) {
        const uint8_t want = fp8_reference_encode(x, f, sat), got = fp8_math::encode(x, f, sat);
        if (want != got && ++bad <= 10)
          ADD_FAILURE() << name(f) << (sat ? " satfinite" : " nosat") << " x = " << x << " (bits 0x" << std::hex
                        << bits(x) << ") want 0x" << int(want) << " got 0x" << int(got) << std::dec;
      }
      EXPECT_EQ(bad, 0) << name(f) << (sat ? " satfinite" : " nosat");
    }
  }
}

// The rules spelled out at the top of runtime/fp8_math.h, one case each.
TEST(Fp8Math, EncodeEdgeCases) {
  using fp8_math::encode;
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  const Fp8Format e4 = Fp8Format::E4M3, e5 = Fp8Format::E5M2;
  EXPECT_EQ(encode(448.0f, e4, false), 0x7e);
  EXPECT_EQ(encode(464.0f, e4, false), 0x7e);  // max + half a step: tie to even (max)
  EXPECT_EQ(encode(std::nextafter(464.0f, inf), e4, false), 0x7f);  // past: NaN
  EXPECT_EQ(encode(std::nextafter(464.0f, inf), e4, true), 0x7e);   // saturated
  EXPECT_EQ(encode(-1e30f, e4, false), 0xff);
  EXPECT_EQ(encode(-inf, e4, true), 0xfe);
  EXPECT_EQ(encode(inf, e4, false), 0x7f);
  EXPECT_EQ(encode(nan, e4, true), 0x7f);
  EXPECT_EQ(encode(-nan, e5, false), 0x7f);  // the sign of a NaN is dropped
  EXPECT_EQ(encode(61440.0f, e5, false), 0x7c);  // max + half a step: tie to even is 2^16: inf
  EXPECT_EQ(encode(std::nextafter(61440.0f, 0.0f), e5, false), 0x7b);
  EXPECT_EQ(encode(61440.0f, e5, true), 0x7b);
  EXPECT_EQ(encode(-inf, e5, false), 0xfc);
  EXPECT_EQ(encode(-inf, e5, true), 0xfb);
  EXPECT_EQ(encode(std::ldexp(1.0f, -10), e4, true), 0x00);  // half the smallest subnormal: to 0 (even)
  EXPECT_EQ(encode(std::nextafter(std::ldexp(1.0f, -10), 1.0f), e4, true), 0x01);
  EXPECT_EQ(encode(-std::ldexp(1.0f, -11), e4, true), 0x80);  // a negative zero
  EXPECT_EQ(encode(3 * std::ldexp(1.0f, -10), e4, true), 0x02);  // 1.5 quanta: tie to even (2)
  EXPECT_EQ(encode(15 * std::ldexp(1.0f, -10), e4, true), 0x08);  // 7.5 quanta: rounds up to the smallest normal
  EXPECT_EQ(encode(std::numeric_limits<float>::denorm_min(), e5, true), 0x00);
  EXPECT_EQ(encode(-0.0f, e5, true), 0x80);
}

// The ops: scale first, then encode; counts of what was lost.
TEST(Fp8Ops, EncodeScalesCountsAndDecodes) {
  const Context& ctx = cpu_context();
  const float inf = std::numeric_limits<float>::infinity();
  // With scale 4: 104 -> 416 (fits exactly), 200 -> 800 (saturates), 1e-4 -> 4e-4
  // (below half the smallest E4M3 subnormal 2^-10: flushed), 0 (not a flush),
  // NaN and -inf (nonfinite), 3e38 * 4 = inf in f32 (a finite input: saturated).
  const std::vector<float> in = {104.0f, 200.0f, 1e-4f, 0.0f, NAN, -inf, 3e38f, -0.5f};
  std::vector<uint8_t> codes(in.size());
  Fp8Counts counts;
  counts.saturated = 10;  // accumulates
  fp8_encode(ctx, codes.data(), in.data(), static_cast<int64_t>(in.size()), 4.0f, Fp8Format::E4M3, true, &counts);
  EXPECT_EQ(counts.saturated, 12);
  EXPECT_EQ(counts.flushed, 1);
  EXPECT_EQ(counts.nonfinite, 2);
  const std::vector<uint8_t> want = {fp8_math::encode(416.0f, Fp8Format::E4M3, true), 0x7e, 0x00, 0x00, 0x7f,
                                     0xfe, 0x7e, fp8_math::encode(-2.0f, Fp8Format::E4M3, true)};
  EXPECT_EQ(codes, want);
  std::vector<float> back(in.size());
  fp8_decode(ctx, back.data(), codes.data(), static_cast<int64_t>(in.size()), 0.25f, Fp8Format::E4M3);
  EXPECT_EQ(back[0], 104.0f);
  EXPECT_EQ(back[1], 112.0f);  // 448 / 4
  EXPECT_TRUE(std::isnan(back[4]));
  EXPECT_EQ(back[7], -0.5f);
  EXPECT_THROW(fp8_encode(ctx, codes.data(), in.data(), 1, 0.0f, Fp8Format::E4M3, true, nullptr), Error);
  EXPECT_THROW(fp8_encode(ctx, nullptr, in.data(), 1, 1.0f, Fp8Format::E4M3, true, nullptr), Error);
}

TEST(Fp8Ops, AmaxIgnoresAndCountsNonfinite) {
  const Context& ctx = cpu_context();
  std::vector<float> x(10001);
  Rng rng(5);
  for (auto& v : x) v = static_cast<float>(rng.normal());
  x[1234] = -7.5f;
  Fp8Amax a = fp8_amax(ctx, x.data(), static_cast<int64_t>(x.size()));
  EXPECT_EQ(a.amax, 7.5f);
  EXPECT_EQ(a.nonfinite, 0);
  x[7] = NAN;
  x[99] = -std::numeric_limits<float>::infinity();
  a = fp8_amax(ctx, x.data(), static_cast<int64_t>(x.size()));
  EXPECT_EQ(a.amax, 7.5f);
  EXPECT_EQ(a.nonfinite, 2);
  const std::vector<float> zeros(17, 0.0f);
  a = fp8_amax(ctx, zeros.data(), 17);
  EXPECT_EQ(a.amax, 0.0f);
}

TEST(Fp8Math, Pow2ScaleIsTheLargestPowerOfTwoThatFits) {
  Rng rng(9);
  for (Fp8Format f : kFormats) {
    const double mx = fp8_math::max_finite(f);
    for (int i = 0; i < 20000; ++i) {
      const float amax = static_cast<float>(std::exp2(-30 + 60 * rng.uniform()));
      const double s = fp8_math::pow2_scale(amax, f);
      int e;
      EXPECT_EQ(std::frexp(s, &e), 0.5) << "not a power of two: " << s;
      EXPECT_LE(amax * s, mx) << amax;
      EXPECT_GT(2 * amax * s, mx) << amax;
    }
    EXPECT_EQ(fp8_math::pow2_scale(0.0f, f), 1.0f);
    EXPECT_EQ(fp8_math::pow2_scale(NAN, f), 1.0f);
    EXPECT_EQ(fp8_math::pow2_scale(static_cast<float>(mx), f), 1.0f);
    EXPECT_EQ(fp8_math::pow2_scale(std::numeric_limits<float>::denorm_min(), f), std::ldexp(1.0f, 127));  // clamped
  }
}

// Blockwise: each tile's scale from its own amax, edge tiles included; the
// codes are the per-element encode of x * scale; dequantisation inverts it.
TEST(Fp8Ops, BlockwiseQuantisesEachTileWithItsOwnScale) {
  const Context& ctx = cpu_context();
  const int rows = 130, cols = 300;  // edge tiles on both sides for 128 x 128
  for (auto tile : {std::pair<int, int>{1, 128}, {128, 128}}) {
    Rng rng(21);
    std::vector<float> x(static_cast<size_t>(rows) * cols);
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(rng.normal() * std::exp2(10 * rng.uniform() - 5));
    x[5] = 1e6f;  // an outlier in the first tile only
    x[301] = NAN;
    const int tr = tile.first, tc = tile.second;
    const int64_t ns = fp8_blockwise_scale_count(rows, cols, tr, tc);
    EXPECT_EQ(ns, ((rows + tr - 1) / tr) * ((cols + tc - 1) / tc));
    std::vector<uint8_t> codes(x.size());
    std::vector<float> sinv(static_cast<size_t>(ns)), back(x.size());
    Fp8Counts counts;
    fp8_quantize_blockwise(ctx, codes.data(), sinv.data(), x.data(), rows, cols, tr, tc, Fp8Format::E4M3, &counts);
    fp8_dequantize_blockwise(ctx, back.data(), codes.data(), sinv.data(), rows, cols, tr, tc, Fp8Format::E4M3);
    EXPECT_EQ(counts.saturated, 0);
    EXPECT_EQ(counts.nonfinite, 1);
    const int64_t tcols = (cols + tc - 1) / tc;
    for (int r = 0; r < rows; ++r)
      for (int c = 0; c < cols; ++c) {
        const int64_t t = (r / tr) * tcols + c / tc;
        if (c % 37 == 0) {  // the tile's scale from its amax (a sample of the elements: the loop is a tile each)
          float amax = 0;
          for (int rr = (r / tr) * tr; rr < std::min(rows, (r / tr) * tr + tr); ++rr)
            for (int cc = (c / tc) * tc; cc < std::min(cols, (c / tc) * tc + tc); ++cc)
              if (std::isfinite(x[rr * cols + cc])) amax = std::max(amax, std::fabs(x[rr * cols + cc]));
          ASSERT_EQ(sinv[t], 1.0f / fp8_math::pow2_scale(amax, Fp8Format::E4M3)) << r << "," << c;
        }
        const size_t i = static_cast<size_t>(r) * cols + c;
        ASSERT_EQ(codes[i], fp8_math::encode(x[i] / sinv[t], Fp8Format::E4M3, true)) << r << "," << c;
        if (std::isfinite(x[i])) {
          // E4M3 keeps 3 mantissa bits: relative error <= 2^-4 for normals;
          // values below the tile's normal range (2^-6 / scale) are off by at most half a subnormal step.
          const double tol = std::max(std::fabs(x[i]) * 0.0625, 0.5 * std::ldexp(1.0, -9) * sinv[t]);
          ASSERT_LE(std::fabs(back[i] - x[i]), tol) << r << "," << c;
        }
      }
  }
}

// Only in a build without CUDA: the ops on a CUDA context throw, naming the op.
TEST(Fp8Ops, CudaBodiesThrowWithoutCuda) {
  if (LINTRAIN_HAS_CUDA) GTEST_SKIP() << "built with CUDA";
  Context ctx;
  ctx.device = Device::CUDA;
  float x = 1.0f;
  uint8_t c = 0;
  try {
    fp8_encode(ctx, &c, &x, 1, 1.0f, Fp8Format::E4M3, true, nullptr);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[fp8_encode] has no CUDA implementation"), std::string::npos) << e.what();
  }
}
