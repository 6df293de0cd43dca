// One batch of training or evaluation data: B sequences of T token ids and
// their next-token targets. A target of kIgnoreTarget (-1) marks a position
// the loss and accuracy skip (MQAR scores only its answer positions); the
// cross-entropy layer uses the same convention.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace lintrain {

constexpr int32_t kIgnoreTarget = -1;

struct Batch {
  int B = 0;
  int T = 0;
  std::vector<int32_t> inputs;   // (B, T) row-major token ids
  std::vector<int32_t> targets;  // (B, T) row-major token ids or kIgnoreTarget

  void resize(int batch, int seq_len) {
    B = batch;
    T = seq_len;
    inputs.assign(static_cast<size_t>(B) * T, 0);
    targets.assign(static_cast<size_t>(B) * T, kIgnoreTarget);
  }
  int32_t* input_row(int b) { return inputs.data() + static_cast<size_t>(b) * T; }
  int32_t* target_row(int b) { return targets.data() + static_cast<size_t>(b) * T; }
  const int32_t* input_row(int b) const { return inputs.data() + static_cast<size_t>(b) * T; }
  const int32_t* target_row(int b) const { return targets.data() + static_cast<size_t>(b) * T; }
};

struct TargetScore {
  int64_t correct = 0;  // scored positions where the prediction equals the target
  int64_t scored = 0;   // positions whose target is not kIgnoreTarget
  double accuracy() const { return scored ? static_cast<double>(correct) / static_cast<double>(scored) : 0.0; }
};

// Compares predictions (B, T) (e.g. the model's argmax) with batch.targets at
// the scored positions. For MQAR this is the recall accuracy.
TargetScore score_predictions(const Batch& batch, const int32_t* predictions);

}  // namespace lintrain
