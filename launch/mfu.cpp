#include "launch/mfu.h"

#include <algorithm>
#include <chrono>
#include <vector>

#include "launch/plan.h"
#include "runtime/context.h"
#include "runtime/device.h"
#include "runtime/error.h"
#include "runtime/ops.h"

namespace lintrain {

double known_gpu_bf16_peak(const std::string& name) {
  // Dense (no sparsity) BF16 tensor-core peaks from the vendor's datasheets.
  // The PCIe H100 runs lower clocks than the SXM part the bare name means.
  struct Known {
    const char* tag;
    double tflops;
  };
  static const Known table[] = {{"H100 PCIe", 756.0}, {"H100", 989.4}, {"H200", 989.4},
                                {"H800", 989.4},      {"A100", 312.0}, {"A800", 312.0}};
  for (const Known& k : table)
    if (name.find(k.tag) != std::string::npos) return k.tflops * 1e12;
  return 0;
}

double model_flops_per_token(const RunConfig& cfg) {
  const RunPlan p = plan_run(cfg, cfg.parallel.sequence, cfg.parallel.data);
  return p.flops_per_token_matmul + p.flops_per_token_attention;
}

double measure_cpu_gemm_flops(int n, int reps) {
  std::vector<float> a(static_cast<size_t>(n) * n), b(a.size()), c(a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    a[i] = static_cast<float>(i % 7) * 0.125f;
    b[i] = static_cast<float>(i % 5) * 0.25f;
  }
  const Context ctx{Device::CPU, nullptr, nullptr};
  matmul(ctx, false, false, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);  // warm-up: threads, pages
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    matmul(ctx, false, false, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s > 0) best = std::max(best, 2.0 * n * n * n / s);
  }
  return best;
}

PeakFlops peak_flops(const RunConfig& cfg) {
  if (cfg.run.peak_tflops > 0) return {cfg.run.peak_tflops * 1e12, "run.peak_tflops"};
  if (cfg.run.device == "cuda") {
    const std::string name = cuda_device_description(std::max(0, cuda_current_device()));
    const double peak = known_gpu_bf16_peak(name);
    if (peak > 0) return {peak, str_cat(name, ", dense BF16")};
    return {0, str_cat(name, " is not in lintrain's table of GPU peaks; set run.peak_tflops to report MFU")};
  }
  static const double measured = measure_cpu_gemm_flops();  // once per process (tests train many times)
  return {measured, "the FP32 GEMM rate measured on this CPU at start-up (best of three 1024^3 products)"};
}

}  // namespace lintrain
