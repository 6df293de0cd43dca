// Runtime basics: dtype conversions against their definitions, tensors, and
// the flat parameter table.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "runtime/cpu/gemm.h"
#include "runtime/dtype.h"
#include "runtime/param_table.h"
#include "runtime/process.h"
#include "runtime/rng.h"

using namespace lintrain;

TEST(DType, Bf16RoundsToNearestEven) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  // 1 + 2^-8 is exactly halfway between bf16 1.0 and 1 + 2^-7: ties to even (1.0).
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.0f + std::ldexp(1.0f, -8))), 1.0f);
  // 1 + 3*2^-8 is halfway between 1+2^-7 (odd mantissa) and 1+2^-6: goes up.
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8))), 1.0f + std::ldexp(1.0f, -6));
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
  EXPECT_TRUE(std::isinf(bf16_to_f32(f32_to_bf16(INFINITY))));
}

TEST(DType, Fp8RoundTripsEveryCode) {
  // Every finite code decodes and re-encodes to itself: the encoder is the
  // exact inverse of the format definition on representable values.
  for (int c = 0; c < 256; ++c) {
    const uint8_t b = static_cast<uint8_t>(c);
    const float v4 = e4m3_to_f32(b);
    if (!std::isnan(v4) && !(v4 == 0 && (b & 0x80))) {
      EXPECT_EQ(f32_to_e4m3(v4), b) << c;
    }
    const float v5 = e5m2_to_f32(b);
    if (std::isfinite(v5) && !(v5 == 0 && (b & 0x80))) {
      EXPECT_EQ(f32_to_e5m2(v5), b) << c;
    }
  }
  EXPECT_EQ(e4m3_to_f32(f32_to_e4m3(1000.0f)), 448.0f);     // saturates
  EXPECT_EQ(e5m2_to_f32(f32_to_e5m2(1e6f)), 57344.0f);      // saturates
  EXPECT_EQ(e4m3_to_f32(0x01), std::ldexp(1.0f, -9));       // smallest subnormal
  EXPECT_EQ(e4m3_to_f32(f32_to_e4m3(1.0625f)), 1.0f);       // tie to even
}

TEST(ParamTable, OffsetsAreAlignedAndDisjoint) {
  ParamTable t;
  t.add("a", {3, 5});
  t.add("b", {7});
  t.add("c", {16, 2});
  EXPECT_EQ(t.view(0).offset, 0);
  EXPECT_EQ(t.view(1).offset, 16);
  EXPECT_EQ(t.view(2).offset, 32);
  EXPECT_EQ(t.buffer_numel(), 64);
  EXPECT_EQ(t.param_count(), 15 + 7 + 32);
  EXPECT_EQ(t.at("b").numel, 7);
  EXPECT_EQ(t.find("zz"), -1);
  EXPECT_THROW(t.add("a", {1}), Error);
  FlatBuffer buf(t);
  buf.at(t.at("c"))[31] = 2.0f;
  EXPECT_EQ(buf.data()[63], 2.0f);
  EXPECT_EQ(buf.tensor(t.at("c")).shape(), (Shape{16, 2}));
  EXPECT_EQ(buf.dtype(), DType::F32);
  EXPECT_EQ(buf.device(), Device::CPU);
  buf.zero();
  EXPECT_EQ(buf.data()[63], 0.0f);
  // A bf16 buffer of the same layout: half the bytes, views at the same
  // element offsets, and no float access.
  FlatBuffer half(t, Device::CPU, DType::BF16);
  EXPECT_EQ(half.nbytes(), 64u * 2);
  const Tensor c = half.tensor(t.at("c"));
  EXPECT_EQ(c.dtype(), DType::BF16);
  EXPECT_EQ(static_cast<char*>(c.raw()) - static_cast<char*>(half.raw()), 32 * 2);
  EXPECT_THROW(half.data(), Error);
}

TEST(ParamTable, FusedTensorsAreAdjacent) {
  ParamTable t;
  t.add("q", {3, 5});
  t.add("k", {2, 5}, /*fuse_with_previous=*/true);
  t.add("n", {5});
  EXPECT_EQ(t.at("k").offset, 15);
  EXPECT_EQ(t.at("n").offset, 32);
}

TEST(Gemm, MatchesNaiveFloat64WithTransposesAndStrides) {
  Rng rng(7);
  const int M = 13, N = 9, K = 21, ld_pad = 3;
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      const int lda = (ta ? M : K) + ld_pad, ldb = (tb ? K : N) + ld_pad, ldc = N + ld_pad;
      std::vector<float> A((ta ? K : M) * lda), B((tb ? N : K) * ldb), C(M * ldc);
      for (auto& x : A) x = static_cast<float>(rng.normal());
      for (auto& x : B) x = static_cast<float>(rng.normal());
      for (auto& x : C) x = static_cast<float>(rng.normal());
      std::vector<float> C0 = C;
      gemm(ta, tb, M, N, K, 0.5f, A.data(), lda, B.data(), ldb, 2.0f, C.data(), ldc);
      for (int i = 0; i < M; ++i)
        for (int j = 0; j < N; ++j) {
          double acc = 0;
          for (int p = 0; p < K; ++p)
            acc += double(ta ? A[p * lda + i] : A[i * lda + p]) * double(tb ? B[j * ldb + p] : B[p * ldb + j]);
          const double want = 0.5 * acc + 2.0 * C0[i * ldc + j];
          // fp32 accumulation of K=21 products of unit normals: error ~ K * 2^-24 * |terms|.
          EXPECT_NEAR(C[i * ldc + j], want, 1e-5 * (1 + std::fabs(want))) << ta << tb << i << j;
        }
    }
}

TEST(Rng, StateRoundTripsAndStreamsDiffer) {
  Rng a(42);
  a.normal();
  auto st = a.state();
  const double x = a.normal(), y = a.uniform();
  Rng b(0);
  b.set_state(st);
  EXPECT_EQ(b.normal(), x);
  EXPECT_EQ(b.uniform(), y);
  EXPECT_NE(Rng::stream(1, 0).next_u64(), Rng::stream(1, 1).next_u64());
}

// A failed library call names the call, the place, the rank and the host.
TEST(Process, CallErrorsSayWhereTheyHappened) {
  set_process_rank(7);
  try {
    throw_call_error("cuda", "cudaMalloc(&p, n)", "runtime/cuda/x.cu", 12, "out of memory");
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "[cuda] cudaMalloc(&p, n) failed at runtime/cuda/x.cu:12 on rank 7 (host " +
                                         host_name() + "): out of memory");
  }
  set_process_rank(-1);
  EXPECT_NE(rank_and_host().find("(host "), std::string::npos);
}
