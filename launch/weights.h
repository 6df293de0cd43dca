// Weights in and out in the ecosystem's format: model.safetensors with the
// Hugging Face Llama tensor names plus a config.json, written atomically.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "layers/model.h"
#include "runtime/config/config.h"

namespace lintrain {

// What an export writes beside the tensors, from the run file: the sequence
// length the model was trained on (data.seq_len, the whole sequence even when
// SP ranks hold pieces of it) and the tokenizer of its data (export_tokenizer).
struct ExportInfo {
  int seq_len = 0;
  std::string tokenizer;  // a tokenizer.json to copy, or "" for none
  int eos_token = -1;     // the data's end-of-document id (megatron), or -1: config.json's eos_token_id
};
ExportInfo export_info(const RunConfig& cfg);

// The tokenizer.json of a run's data: data.tokenizer, or for data.kind
// megatron without it the tokenizer.json beside the first dataset's prefix
// (where scripts/prepare_data.py writes it) when there is one and it is a
// tokenizer.json; else "".
std::string export_tokenizer(const DataConfig& data);

// Writes <dir>/model.safetensors (every tensor of `table` from `params`, F32),
// <dir>/config.json and, with a tokenizer, <dir>/tokenizer.json plus
// <dir>/tokenizer_config.json (the one beside the source tokenizer.json, or
// one naming the fast tokenizer class), so the folder loads in transformers
// with its tokenizer. Throws Error naming the first non-finite weight before
// writing anything: an export never replaces a good file with NaN weights.
void export_weights(const ModelConfig& cfg, const ExportInfo& info, const ParamTable& table,
                    const FlatBuffer& params, const std::string& dir);
inline void export_weights(const LinearLlama& model, const ExportInfo& info, const std::string& dir) {
  export_weights(model.config(), info, model.table(), model.params(), dir);
}

// Loads every parameter of `model` from a safetensors file. Each tensor must be
// present with the same shape (f32 or bf16); a missing, extra or mis-shaped
// tensor throws IoError naming it, and the model is left unchanged. A file
// lintrain wrote must also match the model's layer kinds and linear-attention
// settings (check_weight_metadata); non-finite weights are refused (the model
// is then left partly loaded: the caller stops). Returns notes for the user
// (a warning when the file cannot say which layers were linear attention).
std::vector<std::string> import_weights(LinearLlama& model, const std::string& path);

// What an export records beside the tensors (safetensors __metadata__): the
// producer, the layer pattern, each layer's kind and the resolved
// linear-attention settings (feature map, key scale, every layer's decays,
// output norm and gate).
std::map<std::string, std::string> weight_metadata(const ModelConfig& cfg);
// Throws IoError naming the first property in which a lintrain-written file's
// metadata differs from `cfg`'s; returns a warning for a file without it.
std::vector<std::string> check_weight_metadata(const ModelConfig& cfg, const std::map<std::string, std::string>& file,
                                               const std::string& path);

}  // namespace lintrain
