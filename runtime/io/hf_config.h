// The Hugging Face `config.json` that goes next to exported weights, so that
// tools which understand Llama (transformers, vLLM, llama.cpp converters) can
// read the shapes. The standard keys describe a Llama-3 stack; what Llama
// cannot express (which layers are linear attention and how) sits under a
// "lintrain" key that those tools ignore. A plain LlamaForCausalLM load is
// only faithful for an all-softmax layer_pattern ("S").
#pragma once

#include <string>
#include <vector>

#include "runtime/config/config.h"

namespace lintrain {

// config.json text (pretty-printed, ends with a newline). Keys:
//   architectures ["LlamaForCausalLM"], model_type "llama", hidden_size,
//   intermediate_size, num_attention_heads, num_hidden_layers,
//   num_key_value_heads, head_dim, vocab_size, rms_norm_eps, rope_theta,
//   rope_scaling null, tie_word_embeddings, hidden_act "silu",
//   max_position_embeddings, initializer_range, attention_bias false,
//   mlp_bias false, torch_dtype, use_cache true, and
//   "lintrain": {layer_pattern, layer_types ["linear_attention" |
//   "softmax_attention" per layer], linear_attention {variant, block_size,
//   layers: [one object per linear layer, as `linear` gives it: layer,
//   feature_map, key_scale, decay (one value per query head), output_norm and
//   output_gate as booleans]}}: what the layers compute, the variant's
//   defaults and the run file's overrides resolved (never "" / -1). A model
//   without linear layers has no linear_attention block.
// `max_position_embeddings` is the training sequence length (data.seq_len);
// `torch_dtype` names the dtype of the exported weights ("float32", "bfloat16").
struct LinearLayerExport {
  int layer = 0;                 // 0-based index in the stack
  std::string feature_map;       // identity | elu1 | silu | relu
  double key_scale = 1.0;        // k <- key_scale * phi(k)
  std::vector<float> decay;      // lambda per query head
  bool output_norm = true, output_gate = false;
  // gla: a_t = sigmoid(x W_down^T W_up^T + b)^(1/gate_tau), rank gate_rank
  // (docs/gated_linear_attention.md); written only for gated layers.
  bool forget_gate = false;
  int gate_rank = 0;
  double gate_tau = 1.0;
};
// `eos_token_id` is the data's end-of-document id (Megatron data), or -1 for
// none: then bos_token_id and eos_token_id are null, not Llama's defaults 1
// and 2, which would make generation stop on an ordinary token.
std::string hf_llama_config_json(const ModelConfig& model, int max_position_embeddings,
                                 const std::vector<LinearLayerExport>& linear,
                                 const std::string& torch_dtype = "float32", int eos_token_id = -1);

// What keeps the file at `path` from being a Hugging Face tokenizer.json (a
// JSON object with a "model" object), or "" when nothing does.
std::string tokenizer_json_problem(const std::string& path);

}  // namespace lintrain
