// Every op of runtime/ops.h on every backend of this build against the CPU
// backend, on random inputs: the CUDA body must give the CPU body's result
// within a per-op tolerance (normalised error, max |a - b| / max |b|). The
// CPU bodies themselves are checked against float64 references and finite
// differences in test_layers.cpp. Adding an op means adding its case here.
//
// Without a GPU (or built without CUDA) the CUDA cases skip, saying so; in a
// build without CUDA the ops on a CUDA context must throw, naming the op.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <type_traits>
#include <vector>

#include "runtime/device.h"
#include "runtime/error.h"
#include "runtime/ops.h"
#include "runtime/rope_table.h"
#include "runtime/rng.h"
#include "tests/unit/ops_backend.h"

using namespace lintrain;
using namespace lintrain::test;

namespace {

// Shapes that cross every blocking boundary of the bodies: rows beyond one
// 256-row chunk, columns beyond one 256-thread block and not a multiple of 32.
constexpr int kN = 600, kC = 300, kF = 333, kV = 97;

}  // namespace

// rmsnorm: float sums over 300 values in a different order than the CPU's
// double accumulation: ~1e-6 relative per output; 1e-5 leaves room.
TEST(OpsCuda, RmsnormMatchesCpu) {
  compare_with_cpu("rmsnorm", 1e-5, [](Backend& be) {
    Rng rng(11);
    const auto x = randn(size_t{kN} * kC, rng, 2.0), w = randn(kC, rng), dy = randn(size_t{kN} * kC, rng);
    float* y = be.upload(std::vector<float>(size_t{kN} * kC));
    float* rstd = be.upload(std::vector<float>(kN));
    float* dx = be.upload(std::vector<float>(size_t{kN} * kC, 0.5f));
    float* dw = be.upload(std::vector<float>(kC, 0.25f));
    const float* xd = be.upload(x);
    const float* wd = be.upload(w);
    const float* dyd = be.upload(dy);
    rmsnorm_forward(be.ctx(), y, rstd, xd, wd, kN, kC, 1e-5f);
    rmsnorm_backward(be.ctx(), dx, dw, dyd, xd, wd, rstd, kN, kC);
    return std::vector<std::vector<float>>{be.download(y, size_t{kN} * kC), be.download(rstd, kN),
                                           be.download(dx, size_t{kN} * kC), be.download(dw, kC)};
  });
}

// swiglu: elementwise; expf differs from std::exp by a few ulp: 1e-6.
TEST(OpsCuda, SwigluMatchesCpu) {
  compare_with_cpu("swiglu", 1e-6, [](Backend& be) {
    Rng rng(12);
    const float* gu = be.upload(randn(size_t{kN} * 2 * kF, rng, 3.0));
    const float* dh = be.upload(randn(size_t{kN} * kF, rng));
    float* h = be.upload(std::vector<float>(size_t{kN} * kF));
    float* dgu = be.upload(std::vector<float>(size_t{kN} * 2 * kF));
    swiglu_forward(be.ctx(), h, gu, kN, kF);
    swiglu_backward(be.ctx(), dgu, dh, gu, kN, kF);
    return std::vector<std::vector<float>>{be.download(h, size_t{kN} * kF), be.download(dgu, size_t{kN} * 2 * kF)};
  });
}

// embedding: copies and in-order sums, the CPU's order: bit-identical (0).
TEST(OpsCuda, EmbeddingMatchesCpu) {
  compare_with_cpu("embedding", 1e-30, [](Backend& be) {
    Rng rng(13);
    std::vector<int32_t> tok(kN);
    for (auto& t : tok) t = static_cast<int32_t>(rng.below(kV));
    const float* wte = be.upload(randn(size_t{kV} * kC, rng));
    const float* dy = be.upload(randn(size_t{kN} * kC, rng));
    const int32_t* tokd = be.upload(tok);
    float* y = be.upload(std::vector<float>(size_t{kN} * kC));
    float* dwte = be.upload(std::vector<float>(size_t{kV} * kC, 1.0f));
    embedding_forward(be.ctx(), y, tokd, wte, kN, kC, kV);
    embedding_backward(be.ctx(), dwte, dy, tokd, kN, kC);
    return std::vector<std::vector<float>>{be.download(y, size_t{kN} * kC), be.download(dwte, size_t{kV} * kC)};
  });
}

// matmul: cuBLAS sums K = 300 products in its own order (FP32 math, no
// TF32): ~1e-6 relative; 1e-5 leaves room. All four transpose cases, strided.
TEST(OpsCuda, MatmulMatchesCpu) {
  compare_with_cpu("matmul", 1e-5, [](Backend& be) {
    Rng rng(14);
    const int M = 70, N = 45, K = 300, ld = 320;  // ld > every width: strided operands
    std::vector<std::vector<float>> outs;
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb) {
        const float* A = be.upload(randn(size_t{ld} * std::max(M, K), rng));
        const float* B = be.upload(randn(size_t{ld} * std::max(N, K), rng));
        float* C = be.upload(randn(size_t{M} * ld, rng));
        matmul(be.ctx(), ta, tb, M, N, K, 0.5f, A, ld, B, ld, 0.25f, C, ld);
        outs.push_back(be.download(C, size_t{M} * ld));
      }
    return outs;
  });
}

// matmul_bf16: bf16 operands (rounded here first, as its contract asks), FP32
// accumulation. Products of bf16 values are exact in f32, so only the order of
// the K = 300 sums differs from the CPU's FP32 GEMM (cuBLAS may split K on
// the tensor cores): ~1e-6 relative, 1e-5 leaves room. All four transpose
// cases, strided, alpha and beta.
TEST(OpsCuda, MatmulBf16MatchesCpu) {
  compare_with_cpu("matmul_bf16", 1e-5, [](Backend& be) {
    Rng rng(24);
    const int M = 70, N = 45, K = 300, ld = 320;
    std::vector<std::vector<float>> outs;
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb) {
        float* A = be.upload(randn(size_t{ld} * std::max(M, K), rng));
        float* B = be.upload(randn(size_t{ld} * std::max(N, K), rng));
        round_to_bf16(be.ctx(), A, A, int64_t{ld} * std::max(M, K));
        round_to_bf16(be.ctx(), B, B, int64_t{ld} * std::max(N, K));
        float* C = be.upload(randn(size_t{M} * ld, rng));
        matmul_bf16(be.ctx(), ta, tb, M, N, K, 0.5f, A, ld, B, ld, 0.25f, C, ld);
        outs.push_back(be.download(C, size_t{M} * ld));
      }
    return outs;
  });
}

// On the CPU matmul_bf16 is the FP32 GEMM on the (already bf16) operands: the
// numerics precision.compute: bf16 emulates, bit for bit.
TEST(Ops, MatmulBf16OnTheCpuIsTheFp32GemmOfBf16Values) {
  Backend be(Device::CPU);
  Rng rng(25);
  const int M = 33, N = 17, K = 129;
  std::vector<float> a = randn(size_t{M} * K, rng), b = randn(size_t{K} * N, rng);
  round_to_bf16(be.ctx(), a.data(), a.data(), static_cast<int64_t>(a.size()));
  round_to_bf16(be.ctx(), b.data(), b.data(), static_cast<int64_t>(b.size()));
  std::vector<float> c1(size_t{M} * N), c2(c1.size());
  matmul(be.ctx(), false, false, M, N, K, 1.0f, a.data(), K, b.data(), N, 0.0f, c1.data(), N);
  matmul_bf16(be.ctx(), false, false, M, N, K, 1.0f, a.data(), K, b.data(), N, 0.0f, c2.data(), N);
  EXPECT_EQ(c1, c2);
  EXPECT_EQ(matmul_bf16_scratch_bytes(Device::CPU, M, N, K), 0u);
}

// round_to_bf16: the same integer rounding on both: bit-identical (0).
TEST(OpsCuda, RoundToBf16MatchesCpu) {
  compare_with_cpu("round_to_bf16", 1e-30, [](Backend& be) {
    Rng rng(15);
    auto x = randn(size_t{kN} * kC, rng, 100.0);
    x[0] = 0.0f, x[1] = -0.0f, x[2] = 1e-40f, x[3] = 3.4e38f;  // zeros, a subnormal, near the top
    float* in = be.upload(x);
    float* out = be.upload(std::vector<float>(x.size()));
    round_to_bf16(be.ctx(), out, in, static_cast<int64_t>(x.size()));
    round_to_bf16(be.ctx(), in, in, static_cast<int64_t>(x.size()));  // in place
    return std::vector<std::vector<float>>{be.download(out, x.size()), be.download(in, x.size())};
  });
}

// RoPE: the same float operations per element; cos/sin from the same table:
// bit-identical unless the compiler contracts a * c - b * s into an FMA (a few
// ulp): 1e-6.
TEST(OpsCuda, RopeMatchesCpu) {
  compare_with_cpu("rope", 1e-6, [](Backend& be) {
    Rng rng(16);
    const int B = 2, T = 37, heads = 3, d = 16, ld = heads * d + 5;
    const RopeTable table(d, 10000.0, 3, 60, be.ctx().device);
    float* x = be.upload(randn(size_t{B} * T * ld, rng));
    rope_forward(be.ctx(), x, ld, B, T, heads, 7, table);
    const auto fwd = be.download(x, size_t{B} * T * ld);
    rope_backward(be.ctx(), x, ld, B, T, heads, 20, table);
    return std::vector<std::vector<float>>{fwd, be.download(x, size_t{B} * T * ld)};
  });
}

// cross_entropy_rows: exp/log in double, the row sums in another order:
// ~1e-15 on the loss, the gradients rounded to f32 once: 1e-6.
TEST(OpsCuda, CrossEntropyRowsMatchesCpu) {
  compare_with_cpu("cross_entropy_rows", 1e-6, [](Backend& be) {
    Rng rng(17);
    const int rows = 300, V = 1000;
    std::vector<int32_t> t(rows);
    for (auto& x : t) x = static_cast<int32_t>(rng.below(V));
    t[5] = -1;
    float* z = be.upload(randn(size_t{rows} * V, rng, 4.0));
    const int32_t* td = be.upload(t);
    float* loss = be.upload(std::vector<float>(2 * rows));  // doubles
    int32_t* hit = be.upload(std::vector<int32_t>(rows));
    cross_entropy_rows(be.ctx(), z, reinterpret_cast<double*>(loss), hit, td, rows, V, 0.01f, true);
    std::vector<float> hits(rows);
    const auto hit_f = be.download(reinterpret_cast<const float*>(hit), rows);
    for (int r = 0; r < rows; ++r) hits[r] = static_cast<float>(reinterpret_cast<const int32_t*>(hit_f.data())[r]);
    const auto loss_raw = be.download(loss, 2 * rows);
    std::vector<float> losses(rows);
    for (int r = 0; r < rows; ++r) losses[r] = static_cast<float>(reinterpret_cast<const double*>(loss_raw.data())[r]);
    return std::vector<std::vector<float>>{be.download(z, size_t{rows} * V), losses, hits};
  });
}

// copy_floats / zero_floats: exact.
TEST(OpsCuda, CopyAndZeroMatchCpu) {
  compare_with_cpu("copy_floats", 1e-30, [](Backend& be) {
    Rng rng(18);
    const float* src = be.upload(randn(1000, rng));
    float* dst = be.upload(std::vector<float>(1000, 7.0f));
    copy_floats(be.ctx(), dst, src, 999);
    zero_floats(be.ctx(), dst + 10, 20);
    return std::vector<std::vector<float>>{be.download(dst, 1000)};
  });
}

// The linear-attention layer's per-token ops, every feature map, GQA (H = 4,
// KVH = 2), norm and gate on: expf vs std::exp (a few ulp) through at most
// a handful of operations: 1e-5.
TEST(OpsCuda, LinearAttentionPointwiseMatchesCpu) {
  for (FeatureMap map : {FeatureMap::identity, FeatureMap::elu1, FeatureMap::silu, FeatureMap::relu}) {
    compare_with_cpu("linear_attention_pointwise", 1e-5, [map](Backend& be) {
      Rng rng(19);
      LinearAttentionLayout l;
      l.N = 77, l.H = 4, l.d = 16, l.Hd = 64, l.QK = 96, l.W = 128, l.feature_map = map, l.key_scale = 0.25f;
      const size_t NW = static_cast<size_t>(l.N) * l.W, NHd = static_cast<size_t>(l.N) * l.Hd;
      const float* qkv = be.upload(randn(NW, rng, 2.0));
      float* feat = be.upload(std::vector<float>(NW));
      float* pre = be.upload(std::vector<float>(static_cast<size_t>(l.N) * l.QK));
      linear_attention_features_forward(be.ctx(), feat, pre, qkv, l);
      float* y = be.upload(randn(NHd, rng));
      const float* g = be.upload(randn(NHd, rng, 2.0));
      float* out = be.upload(std::vector<float>(NHd));
      float* rstd = be.upload(std::vector<float>(static_cast<size_t>(l.N) * l.H));
      float* gs = be.upload(std::vector<float>(NHd));
      linear_attention_output_forward(be.ctx(), out, y, rstd, gs, g, l);
      const float* dout = be.upload(randn(NHd, rng));
      float* dy = be.upload(std::vector<float>(NHd));
      float* dg = be.upload(std::vector<float>(NHd));
      linear_attention_output_backward(be.ctx(), dy, dg, dout, y, rstd, gs, l);
      float* dqkv = be.upload(randn(NW, rng));
      linear_attention_features_backward(be.ctx(), dqkv, feat, pre, l);
      return std::vector<std::vector<float>>{be.download(feat, NW), be.download(out, NHd), be.download(rstd, l.N * l.H),
                                             be.download(dy, NHd), be.download(dg, NHd), be.download(dqkv, NW)};
    });
  }
}

TEST(Ops, NewOpsNameThemselvesInTheirErrors) {
  const Context ctx;
  std::vector<float> buf(64);
  const auto expect_error = [](const std::function<void()>& f, const char* text) {
    try {
      f();
      ADD_FAILURE() << "no error, wanted: " << text;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
    }
  };
  expect_error([&] { matmul(ctx, false, false, 4, 4, 4, 1, buf.data(), 3, buf.data(), 4, 0, buf.data(), 4); },
               "[matmul] row strides lda = 3");
  expect_error([&] { matmul(ctx, false, false, -1, 4, 4, 1, buf.data(), 4, buf.data(), 4, 0, buf.data(), 4); },
               "[matmul] negative size");
  const RopeTable table(8, 10000.0, 4, 4);
  expect_error([&] { rope_forward(ctx, buf.data(), 8, 1, 4, 1, 0, table); }, "[rope_forward] positions [0, 4)");
  expect_error([&] { rope_backward(ctx, buf.data(), 4, 1, 4, 1, 4, table); }, "[rope_backward] row stride 4");
  expect_error([&] { rope_forward(ctx, buf.data(), 8, 1, 1, 1, 0, RopeTable()); }, "[rope_forward] the RopeTable is empty");
  std::vector<int32_t> t = {0, 9};
  std::vector<double> loss(2);
  std::vector<int32_t> hit(2);
  expect_error([&] { cross_entropy_rows(ctx, buf.data(), loss.data(), hit.data(), t.data(), 2, 8, 1, false); },
               "[cross_entropy] target 9 at row 1 is outside [0, 8)");
  expect_error([&] { copy_floats(ctx, buf.data() + 1, buf.data(), 8); }, "[copy_floats] the ranges overlap");
  expect_error([&] { round_to_bf16(ctx, nullptr, buf.data(), 3); }, "[round_to_bf16] a null buffer");
  LinearAttentionLayout l;
  l.N = 1, l.H = 2, l.d = 4, l.Hd = 8, l.QK = 12, l.W = 15;  // W should be 16
  expect_error([&] { linear_attention_features_forward(ctx, buf.data(), buf.data(), buf.data(), l); },
               "[linear_attention_features_forward] inconsistent layout");
  l.W = 16, l.feature_map = FeatureMap::silu;
  expect_error([&] { linear_attention_features_forward(ctx, buf.data(), nullptr, buf.data(), l); },
               "the silu feature map needs `pre`");
}

// The checks are the op's, whatever the device: shown here on the CPU.
TEST(Ops, ArgumentErrorsNameTheOp) {
  Backend be(Device::CPU);
  std::vector<float> buf(64);
  try {
    rmsnorm_forward(be.ctx(), buf.data(), buf.data(), nullptr, nullptr, 4, 8, 1e-5f);
    FAIL() << "a null input was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[rmsnorm_forward] argument 2 is null"), std::string::npos) << e.what();
  }
  try {
    swiglu_forward(be.ctx(), buf.data(), buf.data(), 2, 0);
    FAIL() << "F = 0 was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[swiglu_forward] needs N >= 0 rows of C > 0 columns"), std::string::npos);
  }
  Context no_arena;
  try {
    rmsnorm_backward(no_arena, buf.data(), nullptr, buf.data(), buf.data(), nullptr, buf.data(), 2, 8);
    FAIL() << "a context without scratch was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[rmsnorm_backward] needs a scratch arena"), std::string::npos);
  }
}

TEST(Ops, ScratchBeyondTheReservationIsASizingError) {
  Arena arena;
  arena.reserve(128);
  Context ctx;
  ctx.scratch = &arena;
  const int N = 600, C = 64;  // 3 row chunks x 64 floats = 768 bytes of scratch
  std::vector<float> x(size_t{N} * C, 1.0f), w(C, 1.0f), out(size_t{N} * C), rstd(N);
  rmsnorm_forward(ctx, out.data(), rstd.data(), x.data(), w.data(), N, C, 1e-5f);
  std::vector<float> dx(size_t{N} * C), dw(C);
  EXPECT_THROW(rmsnorm_backward(ctx, dx.data(), dw.data(), x.data(), x.data(), w.data(), rstd.data(), N, C), Error);
  arena.reserve(rmsnorm_backward_scratch_bytes(Device::CPU, N, C));
  rmsnorm_backward(ctx, dx.data(), dw.data(), x.data(), x.data(), w.data(), rstd.data(), N, C);
  EXPECT_EQ(arena.used(), 0u) << "an op must give its scratch back";
  EXPECT_EQ(arena.high_water(), rmsnorm_backward_scratch_bytes(Device::CPU, N, C));
}

// A CPU-only build links runtime/no_cuda: an op on a CUDA context names itself.
TEST(Ops, WithoutCudaAnOpOnACudaContextSaysSo) {
  if (LINTRAIN_HAS_CUDA) GTEST_SKIP() << "built with CUDA: the no_cuda bodies are not linked";
  Arena arena(Device::CPU);
  Context ctx;
  ctx.device = Device::CUDA;
  std::vector<float> buf(16);
  try {
    swiglu_forward(ctx, buf.data(), buf.data(), 1, 8);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "[swiglu_forward] has no CUDA implementation (built without CUDA)");
  }
}
