// Output head + cross-entropy, computed in chunks of tokens so the full
// (tokens x vocab) logits matrix never exists: each chunk's logits are formed,
// reduced to loss/argmax, turned into their gradient and multiplied back into
// dh and dW before the next chunk reuses the same (chunk x V) workspace
// (the Cut Cross-Entropy idea, with the chunk in memory instead of in SRAM).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "runtime/context.h"
#include "runtime/ops.h"
#include "runtime/tensor.h"

namespace lintrain {

struct CrossEntropyStats {
  double loss_sum = 0.0;  // sum of -log p(target) over counted tokens
  int64_t count = 0;      // tokens with target >= 0
  int64_t correct = 0;    // counted tokens whose argmax logit is the target
};

class ChunkedCrossEntropy {
 public:
  // chunk_tokens rows of logits are live at once: chunk_tokens * V floats,
  // on ctx's device (ctx must outlive this object). With GemmPrecision::bf16
  // the three GEMMs take bf16 operands (h and w must hold bf16 values; the
  // logits' gradient is rounded to bf16 before it enters the backward GEMMs).
  ChunkedCrossEntropy(const Context& ctx, GemmPrecision prec, int chunk_tokens = 256)
      : ctx_(&ctx), prec_(prec), chunk_tokens_(chunk_tokens) {}

  // h (N, C) final hidden states, w (V, C) output head, targets (N) with -1 =
  // not counted, all on the context's device; host_targets: the same targets
  // in host memory (checked here, summed into the stats). When dh is
  // non-null: dh (N, C) = d(loss)/dh (assigned) and dw (V, C) += d(loss)/dw,
  // where loss = grad_scale * sum of counted per-token losses (grad_scale = 1
  // / tokens in the whole step). The workspace grows on first use only.
  CrossEntropyStats run(const float* h, const float* w, const int32_t* targets, const int32_t* host_targets, int N,
                        int C, int V, float grad_scale, float* dh, float* dw);

  // The workspace run() needs for N tokens, reserved before training so no
  // step allocates.
  void reserve(int N, int V);
  // Scratch (in the context's arena) the GEMMs of run() take for N tokens.
  size_t scratch_bytes(int N, int C, int V) const;
  size_t workspace_bytes() const { return logits_.nbytes() + (rows_ ? rows_->nbytes() : 0); }
  // Bytes of per-row results copied to the host so far (0 on the CPU).
  uint64_t bytes_to_host() const { return bytes_to_host_; }

 private:
  const Context* ctx_;
  GemmPrecision prec_;
  int chunk_tokens_;
  int rows_capacity_ = 0;
  Tensor logits_;                   // (chunk_tokens, V) on the device
  std::shared_ptr<Storage> rows_;   // per row: double loss, then int32 correct, on the device
  std::vector<double> host_loss_;   // their host copies (CUDA only)
  std::vector<int32_t> host_correct_;
  uint64_t bytes_to_host_ = 0;
};

}  // namespace lintrain
