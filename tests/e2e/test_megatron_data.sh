#!/usr/bin/env bash
# Real tokens end to end: scripts/prepare_data.py trains a 1K byte-level BPE
# on the license texts and writes a Megatron .bin/.idx pair; an independent
# reader here (written from the format, not the tool's code) checks the pair
# and that its first document decodes back to the first paragraph of the
# first file; lintrain trains on it (data.kind: megatron), on a blend with a
# second dataset tokenized by the same tokenizer.json (also on 2 DP ranks),
# and resumes exactly;
# a bad magic and a truncated .bin are refused with their messages.
# Skipped when the Python package `tokenizers` is missing.
#   usage: test_megatron_data.sh LINTRAIN_BIN WORK_DIR
set -euo pipefail
# shellcheck source=tests/e2e/launch_lib.sh
source "$(dirname "$0")/launch_lib.sh"
setup_test "$@"
export OMP_NUM_THREADS=1

python3 -c "import tokenizers" 2>/dev/null ||
  skip "the Python package tokenizers is missing (python3 -m pip install tokenizers; scripts/install-deps.sh does)"
LICENSES=/usr/share/common-licenses
[ -d "$LICENSES" ] || skip "$LICENSES is missing"

PREP="$REPO/scripts/prepare_data.py"
D="$WORK/data"
python3 "$PREP" --vocab-size 1024 --split blank-lines --output-prefix "$D/lic" "$LICENSES" >"$WORK/prep.out" ||
  { cat "$WORK/prep.out"; fail "prepare_data.py failed"; }
grep -q "set model.vocab_size: 1024$" "$WORK/prep.out" || { cat "$WORK/prep.out"; fail "no vocabulary of 1024"; }
[ -f "$D/tokenizer.json" ] || fail "prepare_data.py wrote no tokenizer.json"
note "ok: $(head -1 "$WORK/prep.out")"

# The pair, read from the format description.
python3 - "$D/lic" "$D/tokenizer.json" "$LICENSES" <<'PY' || fail "the pair does not match the format or the text"
import os, struct, sys
from tokenizers import Tokenizer
prefix, tok_path, src = sys.argv[1:]
idx = open(prefix + ".idx", "rb").read()
assert idx[:9] == b"MMIDIDX\x00\x00", idx[:9]
version, code, S, D1 = struct.unpack_from("<QBQQ", idx, 9)
assert (version, code) == (1, 8), (version, code)   # uint16 for 1024 ids
off = 34
lengths = struct.unpack_from(f"<{S}i", idx, off); off += 4 * S
pointers = struct.unpack_from(f"<{S}q", idx, off); off += 8 * S
docs = struct.unpack_from(f"<{D1}q", idx, off); off += 8 * D1
assert off == len(idx), (off, len(idx))
assert docs[0] == 0 and docs[-1] == S and list(docs) == sorted(docs)
binary = open(prefix + ".bin", "rb").read()
assert len(binary) == 2 * sum(lengths)
assert all(pointers[i] == 2 * sum(lengths[:i]) for i in range(min(S, 50)))
ids = struct.unpack_from(f"<{lengths[0]}H", binary, pointers[0])
assert max(struct.unpack(f"<{len(binary) // 2}H", binary)) < 1024
first = sorted(f for f in os.listdir(src) if not f.startswith("."))[0]
para = open(os.path.join(src, first), encoding="utf-8").read().split("\n\n")[0].strip("\n") + "\n"
text = Tokenizer.from_file(tok_path).decode(list(ids))
assert text.strip() == para.strip(), (text[:80], para[:80])
assert Tokenizer.from_file(tok_path).token_to_id("<|endoftext|>") == 1023
print(f"{S} documents, {len(binary) // 2} tokens; document 0 decodes to the first paragraph of {first}")
PY
note "ok: the pair reads back from the format description"

# A second dataset with the same tokenizer, for the blend.
python3 "$PREP" --tokenizer "$D/tokenizer.json" --split blank-lines --output-prefix "$D/readme" "$REPO/README.md" \
  >"$WORK/prep2.out" || { cat "$WORK/prep2.out"; fail "prepare_data.py --tokenizer failed"; }

RUN="$REPO/tests/e2e/ckpt_small.yaml"
COMMON=(--set model.vocab_size=1024 --set data.kind=megatron --set data.valid_fraction=0.1
        --set schedule.kind=constant --set checkpoint.every=0)

# train OUT STEPS SETS...: a run that must succeed.
train() {
  local out=$1 steps=$2
  shift 2
  "$LINTRAIN" train "$RUN" "${COMMON[@]}" --set run.out_dir="$out" --set train.steps="$steps" "$@" \
    >"$out.log" 2>&1 || { cat "$out.log"; fail "training in $out failed"; }
}
losses() { python3 -c "import json,sys; [print(repr(json.loads(l)['loss'])) for l in open(sys.argv[1]) if 'kind' not in json.loads(l)]" "$1"; }

train "$WORK/single" 8 --set data.path="$D/lic"
grep -q "megatron data" "$WORK/single.log" || { cat "$WORK/single.log"; fail "the run does not say it reads megatron data"; }
python3 - "$WORK/single/metrics.jsonl" <<'PY' || fail "losses of the megatron run are not what a 1K vocabulary starts at"
import json, math, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
train = [r["loss"] for r in recs if "kind" not in r]
assert len(train) == 8 and all(math.isfinite(x) for x in train), train
assert abs(train[0] - math.log(1024)) < 0.5, train[0]   # near uniform over 1024 ids at initialisation
assert any(r.get("kind") == "eval" for r in recs)
PY
note "ok: 8 steps on the 1K-BPE pair"

# The export carries the data's tokenizer: the same tokenizer.json, and a
# tokenizer_config.json with which transformers' AutoTokenizer loads the
# folder and encodes as the tokenizer does, with the EOD as its eos token.
cmp -s "$D/tokenizer.json" "$WORK/single/tokenizer.json" || fail "the export holds no copy of the data's tokenizer.json"
[ -f "$WORK/single/tokenizer_config.json" ] || fail "the export holds no tokenizer_config.json"
if python3 -c "import transformers" 2>/dev/null; then
  python3 - "$WORK/single" "$D/tokenizer.json" <<'PY' || fail "the exported folder does not load in AutoTokenizer"
import sys, warnings
warnings.filterwarnings("ignore")
from tokenizers import Tokenizer
from transformers import AutoTokenizer
auto = AutoTokenizer.from_pretrained(sys.argv[1])
own = Tokenizer.from_file(sys.argv[2])
text = "Permission is hereby granted, free of charge, to any person obtaining a copy"
assert auto(text, add_special_tokens=False)["input_ids"] == own.encode(text, add_special_tokens=False).ids
assert auto.eos_token == "<|endoftext|>" and auto.eos_token_id == 1023, (auto.eos_token, auto.eos_token_id)
assert auto.decode(own.encode(text).ids) == text
import json, os
config = json.load(open(os.path.join(sys.argv[1], "config.json")))
assert config["eos_token_id"] == 1023 and config["bos_token_id"] is None, (config["eos_token_id"], config["bos_token_id"])
print(type(auto).__name__, len(auto))
PY
  note "ok: the export loads in transformers' AutoTokenizer with the EOD as eos"
else
  note "SKIPPED the AutoTokenizer check: the Python package transformers is missing (scripts/install-deps.sh installs it)"
fi
# An explicit data.tokenizer that is not there is refused before training.
expect_error no_tokenizer "data.tokenizer" -- \
  "$LINTRAIN" train "$RUN" "${COMMON[@]}" --set run.out_dir="$WORK/t" --set data.path="$D/lic" \
  --set data.tokenizer="$D/missing.json"
expect_error not_a_tokenizer "not a Hugging Face tokenizer.json" -- \
  "$LINTRAIN" train "$RUN" "${COMMON[@]}" --set run.out_dir="$WORK/t" --set data.path="$D/lic" \
  --set data.tokenizer="$D/tokenizer_config.json"

# Resume: 4 steps and a checkpoint, then the same command to 8 steps = 8 steps straight.
train "$WORK/resumed" 4 --set data.path="$D/lic" --set checkpoint.every=4
train "$WORK/resumed" 8 --set data.path="$D/lic" --set checkpoint.every=4
diff <(losses "$WORK/single/metrics.jsonl") <(losses "$WORK/resumed/metrics.jsonl") >/dev/null ||
  { diff <(losses "$WORK/single/metrics.jsonl") <(losses "$WORK/resumed/metrics.jsonl"); fail "resumed losses differ"; }
note "ok: stopping at step 4 and resuming to 8 gives the straight run's losses"

train "$WORK/blend" 4 --set data.path= --set "data.blend=[0.7, $D/lic, 0.3, $D/readme]"
grep -q "megatron data" "$WORK/blend.log" || fail "the blend run does not say it reads megatron data"
note "ok: 4 steps on a 0.7/0.3 blend"

# Two data-parallel ranks on the blend (each rank maps the pair; their data fingerprints must agree).
if command -v mpirun >/dev/null 2>&1; then
  "$LINTRAIN" launch --nproc 2 "$RUN" "${COMMON[@]}" --set run.out_dir="$WORK/dp2" --set train.steps=3 \
    --set parallel.data=2 --set data.path= --set "data.blend=[0.7, $D/lic, 0.3, $D/readme]" >"$WORK/dp2.log" 2>&1 ||
    { cat "$WORK/dp2.log"; fail "the 2-rank run on the blend failed"; }
  note "ok: 3 steps on the blend with 2 data-parallel ranks"
else
  note "SKIPPED the 2-rank run: mpirun is not installed"
fi

# Corrupt files are refused before training.
cp "$D/lic.bin" "$D/bad.bin"
python3 -c "import sys; b=bytearray(open(sys.argv[1],'rb').read()); b[0:7]=b'NOTIDX!'; open(sys.argv[2],'wb').write(b)" \
  "$D/lic.idx" "$D/bad.idx"
expect_error bad_magic "does not start with the magic MMIDIDX" -- \
  "$LINTRAIN" train "$RUN" "${COMMON[@]}" --set run.out_dir="$WORK/x" --set data.path="$D/bad"
cp "$D/lic.idx" "$D/short.idx"
head -c 1000 "$D/lic.bin" >"$D/short.bin"
expect_error truncated_bin "the .bin is truncated" -- \
  "$LINTRAIN" train "$RUN" "${COMMON[@]}" --set run.out_dir="$WORK/y" --set data.path="$D/short"
expect_error small_vocab "raise model.vocab_size" -- \
  "$LINTRAIN" train "$RUN" "${COMMON[@]}" --set run.out_dir="$WORK/z" --set data.path="$D/lic" --set model.vocab_size=300
note "PASSED"
