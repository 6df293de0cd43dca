#include "runtime/data/batch.h"

namespace lintrain {

TargetScore score_predictions(const Batch& batch, const int32_t* predictions) {
  TargetScore s;
  const size_t n = static_cast<size_t>(batch.B) * static_cast<size_t>(batch.T);
  for (size_t i = 0; i < n; ++i) {
    if (batch.targets[i] == kIgnoreTarget) continue;
    ++s.scored;
    if (predictions[i] == batch.targets[i]) ++s.correct;
  }
  return s;
}

}  // namespace lintrain
