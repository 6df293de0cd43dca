#include "layers/cross_entropy.h"

#include <algorithm>

#include "runtime/device.h"
#include "runtime/error.h"
#include "runtime/ops.h"

namespace lintrain {

void ChunkedCrossEntropy::reserve(int N, int V) {
  const int chunk = std::max(1, std::min(chunk_tokens_, N));
  if (logits_.numel() < static_cast<int64_t>(chunk) * V)
    logits_ = Tensor::zeros({chunk, V}, DType::F32, ctx_->device);
  if (rows_capacity_ < chunk) {
    rows_ = Storage::allocate(static_cast<size_t>(chunk) * (sizeof(double) + sizeof(int32_t)), ctx_->device);
    rows_capacity_ = chunk;
    if (ctx_->device != Device::CPU) {
      host_loss_.resize(static_cast<size_t>(chunk));
      host_correct_.resize(static_cast<size_t>(chunk));
    }
  }
}

size_t ChunkedCrossEntropy::scratch_bytes(int N, int C, int V) const {
  if (prec_ != GemmPrecision::bf16) return 0;
  const int rows = std::max(1, std::min(chunk_tokens_, N));
  const Device d = ctx_->device;
  return std::max({matmul_bf16_scratch_bytes(d, rows, V, C), matmul_bf16_scratch_bytes(d, rows, C, V),
                   matmul_bf16_scratch_bytes(d, V, C, rows)});
}

CrossEntropyStats ChunkedCrossEntropy::run(const float* h, const float* w, const int32_t* targets,
                                           const int32_t* host_targets, int N, int C, int V, float grad_scale,
                                           float* dh, float* dw) {
  for (int n = 0; n < N; ++n)
    LT_CHECK(host_targets[n] >= -1 && host_targets[n] < V, "[cross_entropy] target ", host_targets[n],
             " at position ", n, " is outside [0, ", V, ") (and not -1 = ignore)");
  const Context& ctx = *ctx_;
  const int chunk = std::max(1, std::min(chunk_tokens_, N));
  reserve(N, V);
  float* logits = logits_.data<float>();
  double* row_loss = static_cast<double*>(rows_->data());
  int32_t* row_correct = reinterpret_cast<int32_t*>(row_loss + rows_capacity_);
  const bool on_host = ctx.device == Device::CPU;
  CrossEntropyStats stats;

  for (int n0 = 0; n0 < N; n0 += chunk) {
    const int rows = std::min(chunk, N - n0);
    const float* hc = h + static_cast<int64_t>(n0) * C;
    matmul(ctx, prec_, false, true, rows, V, C, 1.0f, hc, C, w, C, 0.0f, logits, V);
    cross_entropy_rows(ctx, logits, row_loss, row_correct, targets + n0, rows, V, grad_scale, dh != nullptr);
    const double* loss = row_loss;
    const int32_t* correct = row_correct;
    if (!on_host) {  // the loss read-back: an explicit copy, counted
      copy_to_host(ctx.device, host_loss_.data(), row_loss, sizeof(double) * rows);
      copy_to_host(ctx.device, host_correct_.data(), row_correct, sizeof(int32_t) * rows);
      bytes_to_host_ += (sizeof(double) + sizeof(int32_t)) * static_cast<uint64_t>(rows);
      loss = host_loss_.data();
      correct = host_correct_.data();
    }
    for (int r = 0; r < rows; ++r) {
      if (host_targets[n0 + r] < 0) continue;
      stats.loss_sum += loss[r];
      stats.count += 1;
      stats.correct += correct[r];
    }
    if (dh) {
      if (prec_ == GemmPrecision::bf16) round_to_bf16(ctx, logits, logits, static_cast<int64_t>(rows) * V);
      matmul(ctx, prec_, false, false, rows, C, V, 1.0f, logits, V, w, C, 0.0f, dh + static_cast<int64_t>(n0) * C, C);
      matmul(ctx, prec_, true, false, V, C, rows, 1.0f, logits, V, hc, C, 1.0f, dw, C);
    }
  }
  return stats;
}

}  // namespace lintrain
