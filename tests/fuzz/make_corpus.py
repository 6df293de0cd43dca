#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets into tests/fuzz/corpus/<target>/.

Run it again after changing it (python3 tests/fuzz/make_corpus.py); the files
are committed, so the fuzzers need nothing but the repository. Regression
inputs of fixed findings live beside the seeds as regress-*; this script
never deletes files it did not write. Standard library only; the safetensors
seeds are checked against the reference reader when it is installed.
"""
import json
import os
import re
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CORPUS = os.path.join(HERE, "corpus")


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- run files ----------------------------------------------------------------
def configs():
    with open(os.path.join(ROOT, "examples", "tiny.yaml")) as f:
        tiny = f.read()
    put("fuzz_config", "tiny.yaml", tiny)
    put("fuzz_config", "mqar.yaml", """run: {name: mqar, seed: 7, threads: 1}
model:
  vocab_size: 64
  hidden_size: 32
  num_hidden_layers: 2
  num_attention_heads: 2
  num_key_value_heads: 1
  intermediate_size: 64
  layer_pattern: "LS"
  linear_attention: {variant: retnet, decay: 0.9, feature_map: identity, output_norm: true, output_gate: false}
  tie_word_embeddings: true
data: {kind: mqar, seq_len: 64, mqar_pairs: 8, mqar_queries: 4}
train: {steps: 10, micro_batch: 2, grad_accum: 2, eval_every: 0, eval_batches: 1}
optim: {name: lion, lr: 1.0e-4, lion: {betas: [0.9, 0.99]}}
schedule: {kind: constant, warmup_steps: 0}
precision: {compute: bf16, fp8: {enabled: true, recipe: current, format: e4m3}}
parallel: {sequence: 2, data: 1}
checkpoint: {every: 5, keep: 2, async: false}
resume: none
""")
    put("fuzz_config", "galore.yaml", """model: {vocab_size: 256, hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 128}
data: {kind: text, path: /usr/share/common-licenses, seq_len: 32}
optim:
  name: galore
  lr: 0.001
  weight_decay: 0.1
  no_decay: ["*norm*", "*bias"]
  galore: {rank: 16, update_proj_gap: 50, scale: 0.25, svd: randomized, svd_oversample: 4, svd_power_iters: 1}
  groups:
    - {match: ["*embed*"], optimizer: adamw, lr_scale: 0.5}
    - {match: ["*"], ndim: 2, optimizer: galore}
schedule: {kind: linear, warmup_steps: 5, min_lr_ratio: 0.0}
""")
    put("fuzz_config", "frugal_spam.yaml", """model: {vocab_size: 256, hidden_size: 64, num_hidden_layers: 1, num_attention_heads: 4, intermediate_size: 96, layer_pattern: S}
data: {kind: text, path: /usr/share/common-licenses/GPL-3, seq_len: 16, valid_fraction: 0.1}
optim:
  name: frugal
  frugal: {density: 0.5, update_gap: 10, proj_type: blockwise, state_free: sgd, inactive_lr_scale: 0.5}
  spam: {reset_interval: 20, warmup: 5, threshold: 100.0, clip_delay: 2, density: 0.5}
  groups:
    - {match: ["*mlp*"], optimizer: spam, weight_decay: 0.0}
""")
    put("fuzz_config", "tokens.yaml", """data:
  kind: tokens
  path: /nonexistent/train.bin
  token_dtype: u32
model: {vocab_size: 50304}
""")
    put("fuzz_config", "empty.yaml", "")
    put("fuzz_config", "defaults.yaml", "data: {path: /usr/share/common-licenses}\n")
    # Bad ones: each should be a clear ConfigError.
    put("fuzz_config", "bad-unknown-key.yaml", "model: {hiden_size: 128}\n")
    put("fuzz_config", "bad-type.yaml", "train: {steps: many}\nmodel: {vocab_size: 1.5}\n")
    put("fuzz_config", "bad-range.yaml", "optim: {adamw: {betas: [0.9, 1.5], eps: -1}}\nmodel: {rms_norm_eps: 1e-60}\n")
    put("fuzz_config", "bad-unclosed-quote.yaml", "run:\n  name: \"tiny\n  out_dir: runs/x\nmodel: {vocab_size: 256}\n")
    put("fuzz_config", "bad-anchors.yaml", "a: &x {vocab_size: 256}\nmodel: *x\ndata: {<<: *x}\n")
    put("fuzz_config", "bad-duplicate.yaml", "model: {vocab_size: 256}\nmodel: {vocab_size: 512}\n")
    put("fuzz_config", "bad-two-docs.yaml", "model: {vocab_size: 256}\n---\nmodel: {vocab_size: 512}\n...\n")
    put("fuzz_config", "bad-tabs.yaml", "model:\n\tvocab_size: 256\n")
    put("fuzz_config", "bad-nesting.yaml", "model: " + "[" * 40 + "]" * 40 + "\n")
    put("fuzz_config", "bad-big-numbers.yaml",
        "model: {hidden_size: 99999999999999999999, num_hidden_layers: 2147483647, intermediate_size: 2147483647}\n"
        "data: {seq_len: 1048576}\ntrain: {micro_batch: 65536, steps: -1}\n")
    put("fuzz_config", "bad-list.yaml", "- model\n- data\n")
    put("fuzz_config", "bad-scalar.yaml", "just a string\n")
    put("fuzz_config", "bad-pattern.yaml", "model: {layer_pattern: LLLLLLLLX, num_hidden_layers: 2}\n")
    put("fuzz_config", "bad-groups.yaml", "optim: {groups: [{match: [], optimizer: nope}, {ndim: -3}, 5]}\n")
    put("fuzz_config", "bad-tag.yaml", "model: !!binary aGVsbG8=\ndata: !custom {kind: text}\n")


# ---- safetensors files ------------------------------------------------------------
DTYPES = {"F32": ("<f", 4), "I32": ("<i", 4), "U16": ("<H", 2), "U32": ("<I", 4), "I64": ("<q", 8),
          "U64": ("<Q", 8), "BF16": (None, 2), "F8_E4M3": (None, 1), "F8_E5M2": (None, 1)}


def safetensors(tensors, metadata=None, pad=True):
    """tensors: [(name, dtype, shape, raw bytes)] in file order."""
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    offset = 0
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(t[3] for t in tensors)


def raw(dtype, values):
    fmt, size = DTYPES[dtype]
    if fmt is None:
        return bytes(v & 0xFF for v in values for _ in range(size))[: len(values) * size]
    return b"".join(struct.pack(fmt, v) for v in values)


def safetensors_seeds():
    ok = {
        "one-f32.safetensors": safetensors([("w", "F32", [2, 3], raw("F32", [0.5, -1.0, 2.0, 3.0, 1e-3, 7.0]))]),
        "dtypes.safetensors": safetensors([
            ("a.i64", "I64", [2], raw("I64", [-1, 2**40])),
            ("b.u64", "U64", [1], raw("U64", [2**63])),
            ("c.f32", "F32", [], raw("F32", [1.0])),
            ("d.i32", "I32", [1, 2], raw("I32", [-5, 5])),
            ("e.u32", "U32", [3], raw("U32", [1, 2, 3])),
            ("f.bf16", "BF16", [2, 2], bytes([0x80, 0x3F] * 4)),
            ("g.u16", "U16", [1], raw("U16", [65535])),
            ("h.f8", "F8_E4M3", [3], bytes([1, 2, 3])),
            ("i.f8", "F8_E5M2", [1], bytes([0x7C])),
        ], metadata={"format": "pt", "lintrain.step": "12"}),
        "empty-tensor.safetensors": safetensors([("z", "F32", [0, 4], b""), ("y", "U16", [2], raw("U16", [1, 2]))]),
        "no-tensors.safetensors": safetensors([], metadata={}),
        "unpadded.safetensors": safetensors([("x", "U16", [3], raw("U16", [1, 2, 3]))], pad=False),
        "unicode-names.safetensors": safetensors([("h\u00e9\u4e16.\U0001F600", "F32", [1], raw("F32", [2.0]))],
                                                 metadata={"k\\\"": "v\n"}),
    }
    for name, data in ok.items():
        put("fuzz_safetensors", name, data)
    one = ok["one-f32.safetensors"]
    bad = {
        "bad-short.safetensors": b"\x10\x00\x00",
        "bad-truncated.safetensors": one[:-3],
        "bad-huge-header.safetensors": struct.pack("<Q", 2**63) + b"{}",
        "bad-header-past-end.safetensors": struct.pack("<Q", 64) + b"{}",
        "bad-not-json.safetensors": struct.pack("<Q", 8) + b"{\"a\":,}",
        "bad-overlap.safetensors": struct.pack("<Q", 96) + json.dumps({
            "a": {"dtype": "U16", "shape": [2], "data_offsets": [0, 4]},
            "b": {"dtype": "U16", "shape": [2], "data_offsets": [2, 6]}}, separators=(",", ":")).encode().ljust(96)
            + bytes(6),
        "bad-hole.safetensors": struct.pack("<Q", 96) + json.dumps({
            "a": {"dtype": "U16", "shape": [1], "data_offsets": [0, 2]},
            "b": {"dtype": "U16", "shape": [1], "data_offsets": [4, 6]}}, separators=(",", ":")).encode().ljust(96)
            + bytes(6),
        "bad-dtype.safetensors": safetensors([("w", "F64", [1], bytes(8))]),
        "bad-shape.safetensors": safetensors([("w", "F32", [3, 3], bytes(8))]),
        "bad-shape-overflow.safetensors": struct.pack("<Q", 120) + json.dumps({
            "w": {"dtype": "F32", "shape": [2**32, 2**32, 2**32], "data_offsets": [0, 0]}},
            separators=(",", ":")).encode().ljust(120),
        "bad-negative.safetensors": struct.pack("<Q", 72) + json.dumps({
            "w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, separators=(",", ":")).encode().ljust(72)
            + bytes(4),
        "bad-metadata.safetensors": safetensors([], metadata={"a": 1}),
        "bad-extra-field.safetensors": struct.pack("<Q", 80) + json.dumps({
            "w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4], "x": 0}},
            separators=(",", ":")).encode().ljust(80) + bytes(4),
        "bad-duplicate.safetensors": struct.pack("<Q", 128) + (
            b'{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
            b'"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}').ljust(128) + bytes(8),
        "bad-not-object.safetensors": struct.pack("<Q", 8) + b"[1,2,3] ",
        "bad-deep.safetensors": struct.pack("<Q", 200) + (b'{"a":' + b"[" * 97 + b"]" * 97 + b"}"),
        "bad-utf8.safetensors": struct.pack("<Q", 16) + b'{"\xc3\x28":1}   ',
    }
    for name, data in bad.items():
        put("fuzz_safetensors", name, data)
    try:  # the reference reader agrees on the valid seeds
        from safetensors import deserialize
    except ImportError:
        return
    for name, data in ok.items():
        deserialize(data)


# ---- data files -----------------------------------------------------------------
def data_header(kind, T, B, valid, vocab, flags=0, a=0, b=0, seed=1):
    v = vocab - 1
    return bytes([kind, T - 1, B - 1, valid, v & 0xFF, (v >> 8) & 0xFF, (v >> 16) & 0xFF, flags, a, b,
                  seed & 0xFF, (seed >> 8) & 0xFF])


def data_seeds():
    text = b"It was the best of times, it was the worst of times, it was the age of wisdom.\n" * 3
    put("fuzz_data", "text.bin", data_header(0, 16, 2, 13, 256) + text)
    put("fuzz_data", "text-valid-dp.bin", data_header(0, 8, 3, 64, 256, flags=1 | (2 << 1) | (1 << 3)) + text)
    put("fuzz_data", "text-dir.bin", data_header(1, 8, 1, 13, 256, a=40) + text)
    put("fuzz_data", "text-small-vocab.bin", data_header(0, 4, 1, 0, 100) + text)
    put("fuzz_data", "text-empty.bin", data_header(0, 4, 1, 0, 256))
    ids = list(range(0, 300, 3))
    put("fuzz_data", "tokens-u16.bin", data_header(2, 16, 2, 26, 512) + struct.pack("<%dH" % len(ids), *ids))
    put("fuzz_data", "tokens-u32.bin", data_header(3, 8, 2, 26, 70000) +
        struct.pack("<%dI" % len(ids), *[i * 211 for i in ids]))
    put("fuzz_data", "tokens-odd-size.bin", data_header(2, 4, 1, 0, 512) + b"\x01\x00\x02")
    llmc16 = struct.pack("<3i", 20240520, 1, 40) + bytes(4 * 253) + struct.pack("<40H", *range(40))
    put("fuzz_data", "llmc-u16.bin", data_header(2, 8, 2, 26, 256) + llmc16)
    llmc32 = struct.pack("<3i", 20240801, 7, 24) + bytes(4 * 253) + struct.pack("<24I", *range(1000, 1024))
    put("fuzz_data", "llmc-u32.bin", data_header(3, 8, 1, 0, 2000) + llmc32)
    put("fuzz_data", "llmc-wrong-count.bin", data_header(2, 4, 1, 0, 256) +
        struct.pack("<3i", 20240520, 1, 1000) + bytes(4 * 253) + bytes(20))
    put("fuzz_data", "mqar.bin", data_header(4, 64, 2, 0, 64, a=8, b=0))
    put("fuzz_data", "mqar-more-queries.bin", data_header(4, 48, 3, 0, 40, flags=1, a=5, b=20))
    put("fuzz_data", "mqar-too-short.bin", data_header(4, 8, 1, 0, 16, a=8, b=8))
    # Megatron pairs: body = .idx then .bin, split at the .idx size (bytes 8, 9).
    for name, code, fmt, docs, header, flags, vocab in [
            ("megatron-u16", 8, "H", [list(range(1, 30)), list(range(30, 41)), list(range(41, 70))], 0, 0, 1000),
            ("megatron-int32-valid-dp", 4, "i", [[i * 7 for i in range(d, d + 12)] for d in range(0, 96, 12)], 0,
             1 | (1 << 1) | (1 << 3), 1000),
            ("megatron-uint8-no-eod", 1, "B", [list(range(d, d + 9)) for d in range(0, 90, 9)], 0, 16, 256),
            ("megatron-bad-version", 8, "H", [list(range(10)), list(range(10))], 1, 0, 1000)]:
        width = struct.calcsize("<" + fmt)
        lengths = [len(d) for d in docs]
        pointers = [width * sum(lengths[:i]) for i in range(len(docs))]
        idx = (b"MMIDIDX\x00\x00" + struct.pack("<QBQQ", 1 + header, code, len(docs), len(docs) + 1) +
               struct.pack("<%di" % len(docs), *lengths) + struct.pack("<%dq" % len(docs), *pointers) +
               struct.pack("<%dq" % (len(docs) + 1), *range(len(docs) + 1)))
        binary = b"".join(struct.pack("<%d%s" % (len(d), fmt), *d) for d in docs)
        put("fuzz_data", name + ".bin", data_header(5, 8, 2, 64, vocab, flags=flags, a=len(idx) & 0xFF,
                                                    b=len(idx) >> 8) + idx + binary)


def dictionaries():
    # The run-file keys from the README's option table (lintrain config --doc).
    keys = []
    with open(os.path.join(ROOT, "README.md")) as f:
        for line in f:
            m = re.match(r"^\| `([a-z_.0-9]+)` \|", line)
            if m:
                keys.append(m.group(1))
    lines = ["# run-file keys (lintrain config --doc) and YAML tokens; written by make_corpus.py"]
    seen = set()
    for k in keys:
        for part in k.split("."):
            if part not in seen:
                seen.add(part)
                lines.append('"%s:"' % part)
    for tok in [": ", "- ", "{", "}", "[", "]", ", ", "\"", "'", "&a ", "*a", "<<: ", "!!str ", "---", "...",
                "#", "|", ">", "\\n", "\\t", "~", "null", "true", "false", "1.0e-5", "-1", "0", "2147483648",
                "1e309", ".nan", ".inf", "0x10", "LLLS", "none", "auto"]:
        lines.append(json.dumps(tok))
    with open(os.path.join(HERE, "config.dict"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(HERE, "safetensors.dict"), "w") as f:
        f.write("# safetensors header tokens; written by make_corpus.py\n")
        for tok in ['"dtype"', '"shape"', '"data_offsets"', '"__metadata__"', '"F32"', '"BF16"', '"F8_E4M3"',
                    '"F8_E5M2"', '"I32"', '"U16"', '"U32"', '"I64"', '"U64"', '"F16"', "{", "}", "[", "]", ":",
                    ",", "18446744073709551615", "9223372036854775808", "\\u0000", "\\ud83d\\ude00"]:
            f.write(json.dumps(tok) + "\n")


if __name__ == "__main__":
    configs()
    safetensors_seeds()
    data_seeds()
    dictionaries()
    print("corpus written to", CORPUS, file=sys.stderr)
