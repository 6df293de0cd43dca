// MFU's parts (launch/mfu.h): the GPU peak table, the model FLOPs per token
// (the planner's count, checked here against the formula written out for a
// small model), the CPU GEMM measurement and run.peak_tflops.
#include <gtest/gtest.h>

#include "launch/mfu.h"
#include "layers/model.h"
#include "runtime/param_table.h"

namespace lintrain {
namespace {

TEST(Mfu, KnownGpusByName) {
  EXPECT_DOUBLE_EQ(known_gpu_bf16_peak("NVIDIA H200 (sm_90, 139.8 GiB)"), 989.4e12);
  EXPECT_DOUBLE_EQ(known_gpu_bf16_peak("NVIDIA H100 80GB HBM3"), 989.4e12);
  EXPECT_DOUBLE_EQ(known_gpu_bf16_peak("NVIDIA H100 PCIe"), 756e12);  // the PCIe part before the bare name
  EXPECT_DOUBLE_EQ(known_gpu_bf16_peak("NVIDIA A100-SXM4-80GB"), 312e12);
  EXPECT_EQ(known_gpu_bf16_peak("NVIDIA GeForce RTX 4090"), 0.0);  // unknown: no MFU unless run.peak_tflops
}

TEST(Mfu, ModelFlopsPerTokenIsSixPerMatmulParameterPlusAttention) {
  RunConfig cfg;
  cfg.model.vocab_size = 256;
  cfg.model.hidden_size = 64;
  cfg.model.num_hidden_layers = 2;
  cfg.model.num_attention_heads = 4;
  cfg.model.intermediate_size = 128;
  cfg.model.layer_pattern = "SS";  // softmax only: its attention term is a closed formula
  cfg.data.seq_len = 32;
  const int64_t C = 64, V = 256, F = 128, L = 2, H = 4, d = 16, T = 32;
  // q, k, v, o (C x C each, no GQA), gate/up/down (3 C F), the head (V C).
  const double matmul = L * (4 * C * C + 3 * C * F) + V * C;
  // Q K^T and P V: 2 d FLOPs per key each per head, (T + 1) / 2 keys on
  // average, x 3 for forward + backward.
  const double attention = L * 3.0 * H * 4.0 * d * (T + 1) / 2;
  EXPECT_DOUBLE_EQ(model_flops_per_token(cfg), 6 * matmul + attention);
}

TEST(Mfu, PeakComesFromTheKeyOrTheMeasurement) {
  RunConfig cfg;
  cfg.run.peak_tflops = 2.5;
  const PeakFlops given = peak_flops(cfg);
  EXPECT_DOUBLE_EQ(given.per_rank, 2.5e12);
  EXPECT_EQ(given.source, "run.peak_tflops");
  cfg.run.peak_tflops = 0;
  const PeakFlops measured = peak_flops(cfg);
  // Any CPU that builds lintrain multiplies faster than 0.1 GFLOP/s and
  // slower than 1 PFLOP/s; the figure itself depends on the machine and load.
  EXPECT_GT(measured.per_rank, 1e8);
  EXPECT_LT(measured.per_rank, 1e15);
  EXPECT_NE(measured.source.find("measured"), std::string::npos) << measured.source;
}

}  // namespace
}  // namespace lintrain
