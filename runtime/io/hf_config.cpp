#include "runtime/io/hf_config.h"

#include "runtime/error.h"
#include "runtime/io/json.h"

namespace lintrain {

std::string hf_llama_config_json(const ModelConfig& m, int max_position_embeddings,
                                 const std::vector<LinearLayerExport>& linear, const std::string& torch_dtype) {
  LT_CHECK(m.num_attention_heads > 0 && !m.layer_pattern.empty(),
           "[hf_config] model.num_attention_heads and model.layer_pattern must be set");
  const LinearAttentionConfig& la = m.linear_attention;
  std::string layer_types;
  for (int i = 0; i < m.num_hidden_layers; ++i) {
    layer_types += str_cat(i ? ", " : "", m.layer_kind(i) == 'L' ? "\"linear_attention\"" : "\"softmax_attention\"");
  }
  auto b = [](bool v) { return v ? "true" : "false"; };
  std::string layers;
  for (size_t i = 0; i < linear.size(); ++i) {
    const LinearLayerExport& l = linear[i];
    std::string decay;
    for (size_t h = 0; h < l.decay.size(); ++h) decay += str_cat(h ? ", " : "", json_number(l.decay[h]));
    layers += str_cat("        {\"layer\": ", l.layer, ", \"feature_map\": ", json_quote(l.feature_map),
                      ", \"key_scale\": ", json_number(l.key_scale), ", \"decay\": [", decay,
                      "], \"output_norm\": ", b(l.output_norm), ", \"output_gate\": ", b(l.output_gate),
                      l.forget_gate ? str_cat(", \"forget_gate\": \"gla\", \"gate_rank\": ", l.gate_rank,
                                              ", \"gate_tau\": ", json_number(l.gate_tau))
                                    : std::string(),
                      "}",
                      i + 1 < linear.size() ? ",\n" : "\n");
  }
  const std::string linear_block =
      linear.empty() ? std::string()
                     : str_cat(",\n    \"linear_attention\": {\n", "      \"variant\": ", json_quote(la.variant),
                               ",\n", "      \"block_size\": ", la.block_size, ",\n", "      \"layers\": [\n",
                               layers, "      ]\n", "    }");
  return str_cat(
      "{\n",
      "  \"architectures\": [\"LlamaForCausalLM\"],\n",
      "  \"model_type\": \"llama\",\n",
      "  \"hidden_size\": ", m.hidden_size, ",\n",
      "  \"intermediate_size\": ", m.intermediate_size, ",\n",
      "  \"num_attention_heads\": ", m.num_attention_heads, ",\n",
      "  \"num_hidden_layers\": ", m.num_hidden_layers, ",\n",
      "  \"num_key_value_heads\": ", m.kv_heads(), ",\n",
      "  \"head_dim\": ", m.head_dim(), ",\n",
      "  \"vocab_size\": ", m.vocab_size, ",\n",
      "  \"rms_norm_eps\": ", json_number(m.rms_norm_eps), ",\n",
      "  \"rope_theta\": ", json_number(m.rope_theta), ",\n",
      "  \"rope_scaling\": null,\n",
      "  \"tie_word_embeddings\": ", b(m.tie_word_embeddings), ",\n",
      "  \"hidden_act\": \"silu\",\n",
      "  \"max_position_embeddings\": ", max_position_embeddings, ",\n",
      "  \"initializer_range\": ", json_number(m.initializer_range), ",\n",
      "  \"attention_bias\": false,\n",
      "  \"mlp_bias\": false,\n",
      "  \"torch_dtype\": ", json_quote(torch_dtype), ",\n",
      "  \"use_cache\": true,\n",
      "  \"lintrain\": {\n",
      "    \"layer_pattern\": ", json_quote(m.layer_pattern), ",\n",
      "    \"layer_types\": [", layer_types, "]", linear_block, "\n",
      "  }\n",
      "}\n");
}

}  // namespace lintrain
