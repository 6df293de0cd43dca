#include "launch/weights.h"

#include <cstring>
#include <filesystem>

#include "runtime/cpu/copy.h"
#include "runtime/io/atomic_file.h"
#include "runtime/io/hf_config.h"
#include "runtime/io/safetensors.h"

namespace lintrain {

void export_weights(const ModelConfig& cfg, int seq_len, const ParamTable& table, const FlatBuffer& params,
                    const std::string& dir) {
  std::vector<SafeTensor> tensors;
  for (const TensorView& v : table.views()) {
    const float* w = params.at(v);
    if (const int64_t i = find_non_finite(w, v.numel); i >= 0)
      throw Error(str_cat("[export] weight '", v.name, "' is ", w[i], " at index ", i,
                          "; not exporting non-finite weights (the previous export in ", dir, " is kept)"));
    tensors.push_back(SafeTensor{v.name, DType::F32, v.shape, w});
  }
  std::filesystem::create_directories(dir);
  save_safetensors(dir + "/model.safetensors", tensors,
                   {{"format", "pt"}, {"producer", "lintrain"}, {"layer_pattern", cfg.layer_pattern}});
  write_file_atomic(dir + "/config.json", hf_llama_config_json(cfg, seq_len));
}

void import_weights(LinearLlama& model, const std::string& path) {
  const SafeTensorFile file = load_safetensors(path);
  // Check everything before touching the model, so a bad file changes nothing.
  for (const TensorView& v : model.table().views()) {
    if (!file.contains(v.name))
      throw IoError(str_cat("--init-from ", path, ": tensor '", v.name,
                            "' is missing; the file was written for a different model config"));
    const SafeTensor& t = file.get(v.name);
    if (t.shape != v.shape)
      throw IoError(str_cat("--init-from ", path, ": tensor '", v.name, "' has shape ",
                            shape_str(t.shape), " but this model needs ", shape_str(v.shape),
                            "; check model.* sizes against the file's config.json"));
    if (t.dtype != DType::F32 && t.dtype != DType::BF16)
      throw IoError(str_cat("--init-from ", path, ": tensor '", v.name, "' has dtype ",
                            dtype_name(t.dtype), "; only F32 and BF16 weights can be loaded"));
  }
  for (const SafeTensor& t : file.tensors())
    if (model.table().find(t.name) < 0)
      throw IoError(str_cat("--init-from ", path, ": unexpected tensor '", t.name,
                            "' that this model does not have; check model.layer_pattern, "
                            "model.linear_attention and model.tie_word_embeddings"));
  for (const TensorView& v : model.table().views()) {
    const SafeTensor& t = file.get(v.name);
    float* dst = model.params().at(v);
    if (t.dtype == DType::F32) {
      std::memcpy(dst, t.data, sizeof(float) * static_cast<size_t>(v.numel));
    } else {
      const auto* src = static_cast<const uint16_t*>(t.data);
      for (int64_t i = 0; i < v.numel; ++i) dst[i] = bf16_to_f32(src[i]);
    }
  }
}

}  // namespace lintrain
