#include "runtime/io/hf_config.h"

#include "runtime/error.h"
#include "runtime/io/input_file.h"
#include "runtime/io/json.h"

namespace lintrain {

std::string hf_llama_config_json(const ModelConfig& m, int max_position_embeddings,
                                 const std::vector<LinearLayerExport>& linear, const std::string& torch_dtype,
                                 int eos_token_id) {
  LT_CHECK(m.num_attention_heads > 0 && !m.layer_pattern.empty(),
           "[hf_config] model.num_attention_heads and model.layer_pattern must be set");
  using Json = nlohmann::ordered_json;
  Json layer_types = Json::array();
  for (int i = 0; i < m.num_hidden_layers; ++i)
    layer_types.push_back(m.layer_kind(i) == 'L' ? "linear_attention" : "softmax_attention");
  Json lintrain_block = {{"layer_pattern", m.layer_pattern}, {"layer_types", layer_types}};
  if (!linear.empty()) {
    Json layers = Json::array();
    for (const LinearLayerExport& l : linear) {
      // decay: float in memory, written as the double it is (0.99f -> 0.9900000095367432).
      Json layer = {{"layer", l.layer},           {"feature_map", l.feature_map}, {"key_scale", l.key_scale},
                    {"decay", l.decay},           {"output_norm", l.output_norm}, {"output_gate", l.output_gate}};
      if (l.forget_gate) {
        layer["forget_gate"] = "gla";
        layer["gate_rank"] = l.gate_rank;
        layer["gate_tau"] = l.gate_tau;
      }
      layers.push_back(std::move(layer));
    }
    lintrain_block["linear_attention"] = {
        {"variant", m.linear_attention.variant}, {"block_size", m.linear_attention.block_size}, {"layers", layers}};
  }
  const Json config = {{"architectures", Json::array({"LlamaForCausalLM"})},
                       {"model_type", "llama"},
                       {"hidden_size", m.hidden_size},
                       {"intermediate_size", m.intermediate_size},
                       {"num_attention_heads", m.num_attention_heads},
                       {"num_hidden_layers", m.num_hidden_layers},
                       {"num_key_value_heads", m.kv_heads()},
                       {"head_dim", m.head_dim()},
                       {"vocab_size", m.vocab_size},
                       {"rms_norm_eps", m.rms_norm_eps},
                       {"rope_theta", m.rope_theta},
                       {"rope_scaling", nullptr},
                       {"tie_word_embeddings", m.tie_word_embeddings},
                       {"hidden_act", "silu"},
                       {"max_position_embeddings", max_position_embeddings},
                       {"initializer_range", m.initializer_range},
                       {"attention_bias", false},
                       {"mlp_bias", false},
                       {"torch_dtype", torch_dtype},
                       {"use_cache", true},
                       {"bos_token_id", nullptr},
                       {"eos_token_id", eos_token_id >= 0 ? Json(eos_token_id) : Json(nullptr)},
                       {"lintrain", lintrain_block}};
  return dump_json(config, 2) + "\n";
}

std::string tokenizer_json_problem(const std::string& path) {
  nlohmann::json j;
  try {
    j = parse_json(read_input_file(path, "the tokenizer"));
  } catch (const Error& e) {
    return str_cat("'", path, "' is not a tokenizer.json: ", e.what());
  }
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object())
    return str_cat("'", path, "' is JSON but not a Hugging Face tokenizer.json (it has no \"model\" object); give "
                   "the tokenizer.json that tokenized the data (scripts/prepare_data.py writes one)");
  return "";
}

}  // namespace lintrain
