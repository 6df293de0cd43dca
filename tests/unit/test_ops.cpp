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
#include <string>
#include <type_traits>
#include <vector>

#include "runtime/device.h"
#include "runtime/error.h"
#include "runtime/ops.h"
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
