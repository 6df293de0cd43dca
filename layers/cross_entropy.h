// Output head + cross-entropy, computed in chunks of tokens so the full
// (tokens x vocab) logits matrix never exists: each chunk's logits are formed,
// reduced to loss/argmax, turned into their gradient and multiplied back into
// dh and dW before the next chunk reuses the same (chunk x V) workspace
// (the Cut Cross-Entropy idea, with the chunk in memory instead of in SRAM).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace lintrain {

struct CrossEntropyStats {
  double loss_sum = 0.0;  // sum of -log p(target) over counted tokens
  int64_t count = 0;      // tokens with target >= 0
  int64_t correct = 0;    // counted tokens whose argmax logit is the target
};

class ChunkedCrossEntropy {
 public:
  // chunk_tokens rows of logits are live at once: chunk_tokens * V floats.
  explicit ChunkedCrossEntropy(int chunk_tokens = 256) : chunk_tokens_(chunk_tokens) {}

  // h (N, C) final hidden states, w (V, C) output head, targets (N) with -1 =
  // not counted. When dh is non-null: dh (N, C) = d(loss)/dh (assigned) and
  // dw (V, C) += d(loss)/dw, where loss = grad_scale * sum of counted
  // per-token losses (grad_scale = 1 / tokens in the whole step).
  CrossEntropyStats run(const float* h, const float* w, const int32_t* targets, int N, int C, int V,
                        float grad_scale, float* dh, float* dw);

  size_t workspace_bytes() const { return logits_.size() * sizeof(float); }

 private:
  int chunk_tokens_;
  std::vector<float> logits_;  // (chunk_tokens, V)
};

}  // namespace lintrain
