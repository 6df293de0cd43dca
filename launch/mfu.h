// Model FLOPs utilisation: the FLOPs a step's tokens need by the model's
// shape (6 per matmul parameter per token, plus the attention cores; the
// planner's count, launch/plan.h) over the time the step took, as a fraction
// of what the ranks could do at peak. The peak per rank is, in order:
//   - run.peak_tflops when set;
//   - on CUDA, the dense BF16 tensor-core peak of a GPU lintrain knows by name
//     (H100 SXM / H200: 989.4 TFLOP/s, A100: 312); another GPU reports no MFU
//     unless run.peak_tflops gives its peak;
//   - on the CPU, the FP32 GEMM rate measured at start-up with the run's own
//     GEMM (OpenBLAS, the run's threads), the best of a few 1024^3 products:
//     what this machine's BLAS does at its best, not a datasheet figure.
#pragma once

#include <string>

#include "runtime/config/config.h"

namespace lintrain {

struct PeakFlops {
  double per_rank = 0;  // FLOP/s; 0 = unknown (no MFU is reported)
  std::string source;   // for the start-up report: "run.peak_tflops", "NVIDIA H200 (BF16 dense)", "measured ..."
};

// The peak of one rank of `cfg` (see above). On the CPU this runs the
// measurement (about a quarter of a second at 50 GFLOP/s).
PeakFlops peak_flops(const RunConfig& cfg);

// The known dense BF16 peak of a GPU by its name (cudaDeviceProp::name or
// cuda_device_description), in FLOP/s; 0 for a GPU not in the table.
double known_gpu_bf16_peak(const std::string& device_name);

// The model FLOPs of one token of a training step (forward + backward).
double model_flops_per_token(const RunConfig& cfg);

// The FP32 GEMM rate of this process's CPU BLAS: the best of `reps` products
// of n x n matrices, in FLOP/s.
double measure_cpu_gemm_flops(int n = 1024, int reps = 3);

}  // namespace lintrain
