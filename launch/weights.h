// Weights in and out in the ecosystem's format: model.safetensors with the
// Hugging Face Llama tensor names plus a config.json, written atomically.
#pragma once

#include <string>

#include "layers/model.h"

namespace lintrain {

// Writes <dir>/model.safetensors and <dir>/config.json.
void export_weights(const LinearLlama& model, const std::string& dir);

// Loads every parameter of `model` from a safetensors file. Each tensor must be
// present with the same shape (f32 or bf16); a missing, extra or mis-shaped
// tensor throws IoError naming it, and the model is left unchanged.
void import_weights(LinearLlama& model, const std::string& path);

}  // namespace lintrain
