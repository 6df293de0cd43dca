#!/usr/bin/env python3
"""Text files -> a Megatron indexed dataset (<prefix>.bin + <prefix>.idx) for
data.kind: megatron, tokenized with a Hugging Face `tokenizers` tokenizer.

    # train a 4K byte-level BPE on the input and tokenize it with it
    python3 scripts/prepare_data.py --vocab-size 4096 --split blank-lines \\
        --output-prefix data/licenses /usr/share/common-licenses
    # tokenize more text with the same tokenizer (for a blend)
    python3 scripts/prepare_data.py --tokenizer data/tokenizer.json \\
        --output-prefix data/readme README.md

Inputs are files or directories (their regular files, sorted by name, names
starting with '.' left out, as data.kind: text reads them). A document is a
whole file, or with --split blank-lines each block of text between blank
lines. Empty documents are dropped.

The tokenizer is the tokenizer.json given with --tokenizer, or a byte-level
BPE trained on the input with --vocab-size ids. Its end-of-document token
(--eod, default <|endoftext|>) is the last id of a trained tokenizer, which is
what lintrain's data.eod_token: -1 means; a given tokenizer without it gets it
added. The tokenizer used is written to tokenizer.json beside the output, with
a tokenizer_config.json for transformers' AutoTokenizer (class and EOD token);
lintrain's export copies both next to the weights.

The .bin holds the documents' ids without EODs (lintrain puts one after each
document; --append-eod writes them into the file as Megatron's
preprocess_data.py --append-eod does, for data.add_eod: false). The index has
one sequence per document; ids are uint16 when the vocabulary fits, else int32
(Megatron's choice). Files are written under temporary names and renamed, the
.idx last, so a failed run leaves no half-written pair.

The format (Megatron-LM megatron/core/datasets/indexed_dataset.py):
  .idx: b"MMIDIDX\\x00\\x00", uint64 version 1, uint8 dtype code, uint64 S
        sequences, uint64 D+1 document-index entries, int32 lengths[S],
        int64 byte pointers[S], int64 document index[D+1] (0, ..., S).
"""

import argparse
import array
import json
import os
import struct
import sys

MAGIC = b"MMIDIDX\x00\x00"
VERSION = 1
DTYPE_CODES = {"uint16": (8, "H", 2), "int32": (4, "i", 4)}


def fail(msg):
    print(f"prepare_data: error: {msg}", file=sys.stderr)
    sys.exit(1)


def input_files(paths):
    files = []
    for p in paths:
        if os.path.isdir(p):
            for name in sorted(os.listdir(p)):
                full = os.path.join(p, name)
                if not name.startswith(".") and os.path.isfile(full):
                    files.append(full)
        elif os.path.isfile(p):
            files.append(p)
        else:
            fail(f"input '{p}' is not a file or a directory")
    if not files:
        fail("no input files")
    return files


def read_documents(files, split):
    docs = []
    for f in files:
        with open(f, "r", encoding="utf-8", errors="replace") as fh:
            text = fh.read()
        if split == "file":
            parts = [text]
        else:  # blank-lines: blocks separated by lines that are empty or only spaces
            parts, block = [], []
            for line in text.splitlines(keepends=True):
                if line.strip():
                    block.append(line)
                elif block:
                    parts.append("".join(block))
                    block = []
            if block:
                parts.append("".join(block))
        docs.extend(p for p in parts if p.strip())
    return docs


def train_bpe(docs, vocab_size, eod):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    # vocab_size - 1 learned ids, then the EOD as the last one.
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - 1, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
    tok.train_from_iterator(docs, trainer=trainer)
    tok.add_special_tokens([eod])
    return tok


def write_atomic(path, chunks):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as fh:
        for c in chunks:
            fh.write(c)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("inputs", nargs="+", help="text files or directories of them")
    ap.add_argument("--output-prefix", required=True, help="writes <prefix>.bin and <prefix>.idx")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--tokenizer", help="a Hugging Face tokenizer.json to tokenize with")
    src.add_argument("--vocab-size", type=int, help="train a byte-level BPE of this many ids (EOD included)")
    ap.add_argument("--split", choices=["file", "blank-lines"], default="file",
                    help="a document is a whole file (default) or each blank-line-separated block")
    ap.add_argument("--eod", default="<|endoftext|>", help="the end-of-document token's text")
    ap.add_argument("--append-eod", action="store_true",
                    help="write the EOD after each document into the .bin (then set data.add_eod: false)")
    args = ap.parse_args()

    try:
        from tokenizers import Tokenizer
    except ImportError:
        fail("the Python package 'tokenizers' is missing; install it with `python3 -m pip install tokenizers` "
             "(scripts/install-deps.sh does)")

    if args.vocab_size is not None and not 257 <= args.vocab_size <= 2**31 - 1:
        fail(f"--vocab-size {args.vocab_size} must be at least 257 (256 byte ids and the EOD)")
    docs = read_documents(input_files(args.inputs), args.split)
    if not docs:
        fail("the inputs hold no text")

    if args.tokenizer:
        tok = Tokenizer.from_file(args.tokenizer)
        if tok.token_to_id(args.eod) is None:
            tok.add_special_tokens([args.eod])
    else:
        tok = train_bpe(docs, args.vocab_size, args.eod)
    vocab = tok.get_vocab_size(with_added_tokens=True)
    eod_id = tok.token_to_id(args.eod)

    dtype = "uint16" if vocab <= 2**16 else "int32"
    code, typecode, width = DTYPE_CODES[dtype]
    ids = array.array(typecode)
    lengths = array.array("i")
    for enc in tok.encode_batch(docs, add_special_tokens=False):
        doc = enc.ids + ([eod_id] if args.append_eod else [])
        ids.extend(doc)
        lengths.append(len(doc))
    pointers = array.array("q")
    offset = 0
    for n in lengths:
        pointers.append(offset)
        offset += n * width
    doc_index = array.array("q", range(len(lengths) + 1))
    if sys.byteorder != "little":
        for a in (ids, lengths, pointers, doc_index):
            a.byteswap()

    out_dir = os.path.dirname(os.path.abspath(args.output_prefix))
    os.makedirs(out_dir, exist_ok=True)
    tok_path = os.path.join(out_dir, "tokenizer.json")
    tok_json = tok.to_str(pretty=True)
    if os.path.exists(tok_path) and os.path.abspath(tok_path) != os.path.abspath(args.tokenizer or ""):
        with open(tok_path, encoding="utf-8") as fh:
            if json.loads(fh.read()) != json.loads(tok_json):
                fail(f"'{tok_path}' holds another tokenizer; tokenize with it (--tokenizer {tok_path}) or write "
                     "this dataset to another directory")
    write_atomic(tok_path, [tok_json.encode("utf-8")])
    # What transformers' AutoTokenizer reads beside tokenizer.json: the class
    # to load it with and which token ends a document (generation stops
    # there). lintrain's export copies both next to the weights.
    tok_config = {"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": args.eod,
                  "clean_up_tokenization_spaces": False}
    write_atomic(os.path.join(out_dir, "tokenizer_config.json"),
                 [(json.dumps(tok_config, indent=2) + "\n").encode("utf-8")])
    write_atomic(args.output_prefix + ".bin", [ids.tobytes()])
    header = MAGIC + struct.pack("<QBQQ", VERSION, code, len(lengths), len(doc_index))
    write_atomic(args.output_prefix + ".idx",
                 [header, lengths.tobytes(), pointers.tobytes(), doc_index.tobytes()])

    print(f"prepare_data: wrote {args.output_prefix}.bin/.idx: {len(lengths)} documents, {len(ids)} tokens "
          f"({dtype}); tokenizer {tok_path}")
    hint = "" if eod_id == vocab - 1 else f", data.eod_token: {eod_id}"
    print(f"prepare_data: set model.vocab_size: {vocab}{hint}"
          f"{', data.add_eod: false' if args.append_eod else ''}")


if __name__ == "__main__":
    main()
