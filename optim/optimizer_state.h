// An optimizer's state as entries of the run's state (runtime/checkpoint/
// run_state.h): every f32 state tensor (moments, projectors, masks) and
// every 64-bit word (step counters, RNG states), under the optimizer's own
// names. A checkpoint saves them with everything else of the run, and a
// restore that writes them back continues bit-identically.
#pragma once

#include <string>

#include "optim/optimizer.h"
#include "runtime/checkpoint/run_state.h"

namespace lintrain {

// Adds opt's tensors (F32) and words (U64 scalars) to `state` as entries
// "<prefix><name>" of `part`, and its name as the part's metadata
// "<prefix>name". The entries point into opt's live buffers.
void add_optimizer_state(Optimizer& opt, RunState& state, const std::string& part = "trainer",
                         const std::string& prefix = "optimizer/");

}  // namespace lintrain
