#include "launch/weights.h"

#include <cstring>
#include <filesystem>

#include "runtime/cpu/copy.h"
#include "runtime/host_staging.h"
#include "runtime/data/megatron_loader.h"
#include "runtime/io/atomic_file.h"
#include "runtime/io/input_file.h"
#include "runtime/io/json.h"
#include "runtime/io/hf_config.h"
#include "runtime/io/safetensors.h"
#include "layers/linear_attention.h"

namespace lintrain {

namespace {

// One metadata entry per property that decides what the weights mean but not
// their shapes (shapes are checked tensor by tensor): which layers are linear
// attention, and how those layers read their q, k and v.
struct MetaKey {
  const char* name;     // in the file's __metadata__
  const char* config;   // the model.* keys that set it, for the fix
};
constexpr MetaKey kMetaKeys[] = {
    {"lintrain.layer_kinds", "model.layer_pattern"},
    {"lintrain.feature_map", "model.linear_attention.variant / feature_map"},
    {"lintrain.key_scale", "model.linear_attention.variant"},
    {"lintrain.decay", "model.linear_attention.variant / decay"},
    {"lintrain.output_norm", "model.linear_attention.variant / output_norm"},
    {"lintrain.output_gate", "model.linear_attention.variant / output_gate"},
    // Only in files with gla layers (older files and other variants lack it).
    {"lintrain.forget_gate", "model.linear_attention.variant / gate_tau"},
};

}  // namespace

std::map<std::string, std::string> weight_metadata(const ModelConfig& cfg) {
  std::string kinds, feature, key_scale, decay, norm, gate, forget;
  for (int i = 0; i < cfg.num_hidden_layers; ++i) {
    kinds += cfg.layer_kind(i);
    if (cfg.layer_kind(i) != 'L') continue;
    const LinearAttentionSpec s = make_linear_attention_spec(cfg, i);
    // The same for every linear layer; the decays differ by layer (tnl).
    feature = feature_map_name(s.feature_map);
    key_scale = str_cat(s.key_scale);
    norm = s.output_norm ? "true" : "false";
    gate = s.output_gate ? "true" : "false";
    decay += str_cat(decay.empty() ? "" : ";", i, ":");
    for (size_t h = 0; h < s.decay.size(); ++h) decay += str_cat(h ? "," : "", s.decay[h]);
    if (s.gated) forget = str_cat("gla logsigmoid/tau tau=", s.gate_tau);  // the rank is in the shapes
  }
  std::map<std::string, std::string> m = {{"format", "pt"}, {"producer", "lintrain"},
                                          {"layer_pattern", cfg.layer_pattern}, {"lintrain.layer_kinds", kinds}};
  if (!feature.empty()) {
    m["lintrain.feature_map"] = feature;
    m["lintrain.key_scale"] = key_scale;
    m["lintrain.decay"] = decay;
    m["lintrain.output_norm"] = norm;
    m["lintrain.output_gate"] = gate;
  }
  if (!forget.empty()) m["lintrain.forget_gate"] = forget;
  return m;
}

std::vector<std::string> check_weight_metadata(const ModelConfig& cfg, const std::map<std::string, std::string>& file,
                                               const std::string& path) {
  const std::map<std::string, std::string> mine = weight_metadata(cfg);
  const auto producer = file.find("producer");
  const bool ours = producer != file.end() && producer->second == "lintrain";
  const bool has_linear = mine.count("lintrain.feature_map") > 0;
  if (!ours || !file.count("lintrain.layer_kinds")) {
    // A file from elsewhere (a Hugging Face Llama) or from an older lintrain:
    // its names and shapes fit, but nothing in it says which layers were
    // linear attention. Loading softmax-trained weights into linear layers is
    // a known starting point (linearising a Llama), so it is allowed, aloud.
    if (!has_linear) return {};
    std::string linear;
    for (int i = 0; i < cfg.num_hidden_layers; ++i)
      if (cfg.layer_kind(i) == 'L') linear += str_cat(linear.empty() ? "" : ",", i);
    return {str_cat("warning: --init-from ", path, " does not say which of its layers are linear attention (",
                    ours ? "it predates lintrain's layer metadata" : "it was not written by lintrain",
                    "); its weights load by name, so layers ", linear,
                    " of this model (linear attention) start from weights that may have been trained as softmax "
                    "attention")};
  }
  for (const MetaKey& k : kMetaKeys) {
    const auto want = mine.find(k.name);
    const auto got = file.find(k.name);
    const std::string w = want == mine.end() ? "(none: no linear-attention layer)" : want->second;
    const std::string g = got == file.end() ? "(none: no linear-attention layer)" : got->second;
    if (w == g) continue;
    auto cut = [](const std::string& x) { return x.size() > 80 ? x.substr(0, 77) + "..." : x; };
    throw IoError(str_cat("--init-from ", path, ": the file's ", k.name, " is '", cut(g), "' but this model's is '",
                          cut(w), "'; its weights were trained for other layers (", k.config,
                          "): set the model.* keys the file was written with (see its config.json), or "
                          "train from scratch without --init-from"));
  }
  return {};
}

std::string export_tokenizer(const DataConfig& data) {
  if (!data.tokenizer.empty()) return data.tokenizer;
  if (data.kind != "megatron") return "";
  const std::vector<BlendPart> parts = megatron_blend(data);
  if (parts.empty()) return "";
  const std::filesystem::path beside = std::filesystem::path(parts[0].prefix).parent_path() / "tokenizer.json";
  std::error_code ec;
  if (!std::filesystem::is_regular_file(beside, ec) || !tokenizer_json_problem(beside.string()).empty()) return "";
  return beside.string();
}

ExportInfo export_info(const RunConfig& cfg) {
  const int eos = cfg.data.kind == "megatron" ? megatron_eod_token(cfg.data, cfg.model.vocab_size) : -1;
  return ExportInfo{cfg.data.seq_len, export_tokenizer(cfg.data), eos};
}

namespace {

// tokenizer.json and its tokenizer_config.json into the export folder. A
// tokenizer_config.json beside the source (prepare_data.py writes one) is
// copied as it is; without one, the export writes the least transformers'
// AutoTokenizer needs to pick the fast tokenizer class for tokenizer.json.
void export_tokenizer_files(const std::string& tokenizer, int seq_len, const std::string& dir) {
  write_file_atomic(dir + "/tokenizer.json", read_input_file(tokenizer, "the tokenizer (data.tokenizer)"));
  const std::string config = (std::filesystem::path(tokenizer).parent_path() / "tokenizer_config.json").string();
  std::error_code ec;
  if (std::filesystem::is_regular_file(config, ec))
    write_file_atomic(dir + "/tokenizer_config.json", read_input_file(config, "the tokenizer's tokenizer_config.json"));
  else
    write_file_atomic(dir + "/tokenizer_config.json",
                      dump_json({{"tokenizer_class", "PreTrainedTokenizerFast"}, {"model_max_length", seq_len}}, 2) +
                          "\n");
}

}  // namespace

void export_weights(const ModelConfig& cfg, const ExportInfo& info, const ParamTable& table,
                    const FlatBuffer& params, const std::string& dir) {
  const int seq_len = info.seq_len;
  // Weights on a GPU come to the host in one copy first.
  HostStaging host;
  const Context where{params.device(), nullptr, nullptr};
  const float* all = host.read(where, params.data(), params.numel());
  std::vector<SafeTensor> tensors;
  for (const TensorView& v : table.views()) {
    const float* w = all + v.offset;
    if (const int64_t i = find_non_finite(w, v.numel); i >= 0)
      throw Error(str_cat("[export] weight '", v.name, "' is ", w[i], " at index ", i,
                          "; not exporting non-finite weights (the previous export in ", dir, " is kept)"));
    tensors.push_back(SafeTensor{v.name, DType::F32, v.shape, w});
  }
  create_output_dir(dir, "export directory");
  save_safetensors(dir + "/model.safetensors", tensors, weight_metadata(cfg));
  std::vector<LinearLayerExport> linear;  // what each linear layer computes, resolved
  for (int i = 0; i < cfg.num_hidden_layers; ++i) {
    if (cfg.layer_kind(i) != 'L') continue;
    const LinearAttentionSpec s = make_linear_attention_spec(cfg, i);
    linear.push_back({i, feature_map_name(s.feature_map), s.key_scale, s.decay, s.output_norm, s.output_gate,
                      s.gated, s.gated ? s.gate_rank : 0, s.gated ? s.gate_tau : 1.0});
  }
  write_file_atomic(dir + "/config.json", hf_llama_config_json(cfg, seq_len, linear, "float32", info.eos_token));
  if (!info.tokenizer.empty()) export_tokenizer_files(info.tokenizer, seq_len, dir);
}

std::vector<std::string> import_weights(LinearLlama& model, const std::string& path) {
  SafeTensorFile file;
  try {
    file = load_safetensors(path);
  } catch (const IoError& e) {
    throw IoError(str_cat("--init-from: ", e.what()));
  }
  // Check everything before touching the model, so a bad file changes nothing.
  std::vector<std::string> notes = check_weight_metadata(model.config(), file.metadata(), path);
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
  // Filled on the host (the model's buffer itself on the CPU), checked, then
  // copied to the device in one piece.
  HostStaging host;
  FlatBuffer& params = model.params();
  float* all = host.write(model.context(), params.data(), params.numel());
  for (const TensorView& v : model.table().views()) {
    const SafeTensor& t = file.get(v.name);
    float* dst = all + v.offset;
    if (t.dtype == DType::F32) {
      std::memcpy(dst, t.data, sizeof(float) * static_cast<size_t>(v.numel));
    } else {
      const auto* src = static_cast<const uint16_t*>(t.data);
      for (int64_t i = 0; i < v.numel; ++i) dst[i] = bf16_to_f32(src[i]);
    }
  }
  // Non-finite starting weights would only ever train to NaN.
  for (const TensorView& v : model.table().views()) {
    const float* w = all + v.offset;
    if (const int64_t i = find_non_finite(w, v.numel); i >= 0)
      throw IoError(str_cat("--init-from ", path, ": tensor '", v.name, "' holds ", w[i], " at index ", i,
                            "; a model cannot start from non-finite weights"));
  }
  host.publish(model.context(), params.data(), params.numel());
  return notes;
}

}  // namespace lintrain
