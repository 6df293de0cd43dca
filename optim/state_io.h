// Optimizer state on disk: every StateTensor as an F32 tensor of a
// safetensors file, every StateWord as a decimal string in its metadata, plus
// the optimizer's name and a format tag. The checkpoint writer stores one of
// these beside the weights; `lintrain`-independent tools can read it.
//
// Loading checks the whole file against the optimizer first (same tensor
// names and shapes, same words, nothing missing or extra) and only then
// copies, so a mismatched file leaves the optimizer untouched.
#pragma once

#include <string>

#include "optim/optimizer.h"

namespace lintrain {

// Writes opt's full state to `path` atomically. Throws IoError on failure.
void save_optimizer_state(Optimizer& opt, const std::string& path);

// Restores opt's full state from `path`. Throws IoError naming the file and
// the first mismatch (and that the run's optim settings must match the ones
// that wrote it) without changing opt.
void load_optimizer_state(Optimizer& opt, const std::string& path);

}  // namespace lintrain
