#!/usr/bin/env bash
# A pure-softmax model's export is a plain Hugging Face Llama folder: its
# config.json loads as transformers' LlamaConfig with the run's shape, and
# model.safetensors holds exactly the tensors LlamaForCausalLM names, with the
# shapes that config implies (checked from the safetensors header, no PyTorch
# needed); where PyTorch is installed, LlamaForCausalLM.from_pretrained loads
# the folder with no missing or unexpected weight and its loss on a sequence
# is finite. Skipped without the Python package transformers.
#   usage: test_hf_export.sh LINTRAIN_BIN WORK_DIR
set -euo pipefail
# shellcheck source=tests/e2e/launch_lib.sh
source "$(dirname "$0")/launch_lib.sh"
setup_test "$@"
export OMP_NUM_THREADS=1
python3 -c "import transformers" 2>/dev/null ||
  skip "the Python package transformers is missing (scripts/install-deps.sh installs it)"

RUN="$REPO/tests/e2e/ckpt_small.yaml"
for tied in false true; do
  out="$WORK/softmax-$tied"
  "$LINTRAIN" train "$RUN" --set model.layer_pattern=SS --set model.num_key_value_heads=2 \
    --set model.tie_word_embeddings=$tied --set train.steps=2 --set checkpoint.every=0 --set run.out_dir="$out" \
    >"$out.log" 2>&1 || { cat "$out.log"; fail "training the softmax model failed"; }
  python3 - "$out" "$tied" <<'PY' || fail "the export (tie_word_embeddings $tied) is not a plain Llama folder"
import json, os, struct, sys, warnings
warnings.filterwarnings("ignore")
from transformers import AutoConfig, LlamaConfig
out, tied = sys.argv[1], sys.argv[2] == "true"
c = AutoConfig.from_pretrained(out)
assert isinstance(c, LlamaConfig), type(c)
assert (c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.num_key_value_heads) == (64, 2, 4, 2)
assert (c.intermediate_size, c.vocab_size, c.tie_word_embeddings) == (128, 256, tied)
assert c.eos_token_id is None and c.bos_token_id is None   # byte-level data: no EOD
raw = open(os.path.join(out, "model.safetensors"), "rb").read()
(n,) = struct.unpack("<Q", raw[:8])
header = json.loads(raw[8:8 + n])
got = {k: tuple(v["shape"]) for k, v in header.items() if k != "__metadata__"}
C, F, V, d = c.hidden_size, c.intermediate_size, c.vocab_size, c.head_dim
H, KV = c.num_attention_heads, c.num_key_value_heads
want = {"model.embed_tokens.weight": (V, C), "model.norm.weight": (C,)}
if not tied:
    want["lm_head.weight"] = (V, C)
for i in range(c.num_hidden_layers):
    p = f"model.layers.{i}."
    want.update({p + "input_layernorm.weight": (C,), p + "post_attention_layernorm.weight": (C,),
                 p + "self_attn.q_proj.weight": (H * d, C), p + "self_attn.k_proj.weight": (KV * d, C),
                 p + "self_attn.v_proj.weight": (KV * d, C), p + "self_attn.o_proj.weight": (C, H * d),
                 p + "mlp.gate_proj.weight": (F, C), p + "mlp.up_proj.weight": (F, C),
                 p + "mlp.down_proj.weight": (C, F)})
assert got == want, (sorted(set(got) ^ set(want)), [k for k in got if k in want and got[k] != want[k]])
try:
    import torch
except ImportError:
    print("tensors match LlamaForCausalLM's names and shapes; PyTorch is missing, so the weights were not loaded")
    sys.exit(0)
from transformers import LlamaForCausalLM
model, info = LlamaForCausalLM.from_pretrained(out, output_loading_info=True)
assert not info["missing_keys"] and not info["unexpected_keys"], info
ids = torch.arange(0, 32).unsqueeze(0) % c.vocab_size
loss = model(ids, labels=ids).loss.item()
assert loss == loss and loss < 20, loss
print(f"LlamaForCausalLM loads it: loss {loss:.4f}")
PY
  note "ok: tie_word_embeddings $tied"
done
note "PASSED"
