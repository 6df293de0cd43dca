// Weights in and out in the ecosystem's format: model.safetensors with the
// Hugging Face Llama tensor names plus a config.json, written atomically.
#pragma once

#include <string>

#include "layers/model.h"

namespace lintrain {

// Writes <dir>/model.safetensors (every tensor of `table` from `params`, F32)
// and <dir>/config.json for a model trained on sequences of seq_len tokens
// (data.seq_len, the whole sequence even when SP ranks hold pieces of it).
// Throws Error naming the first non-finite weight before writing anything:
// an export never replaces a good file with NaN weights.
void export_weights(const ModelConfig& cfg, int seq_len, const ParamTable& table, const FlatBuffer& params,
                    const std::string& dir);
inline void export_weights(const LinearLlama& model, int seq_len, const std::string& dir) {
  export_weights(model.config(), seq_len, model.table(), model.params(), dir);
}

// Loads every parameter of `model` from a safetensors file. Each tensor must be
// present with the same shape (f32 or bf16); a missing, extra or mis-shaped
// tensor throws IoError naming it, and the model is left unchanged.
void import_weights(LinearLlama& model, const std::string& path);

}  // namespace lintrain
