#!/usr/bin/env python3
"""Build the optimizer-quality benchmark's corpus from the GNU manuals every
Debian machine with the build tools ships in /usr/share/info (about 6 MB of
English technical prose; no download).

Repeated paragraphs (each manual's copy of the GNU FDL, shared boilerplate)
are kept once. The manuals are cut into chunks of whole paragraphs (about CHUNK bytes each)
and the chunks are shuffled with a fixed seed, so the held-out tail that
data.valid_fraction takes is unseen text from every manual rather than the
end of the last one. The same input files give the same corpus byte for byte;
the script prints its size and sha256 so a figure can be tied to its corpus.

  usage: bench/make_corpus.py OUT_FILE [INFO_DIR]
"""
import gzip
import hashlib
import random
import sys
from pathlib import Path

CHUNK = 2048
SEED = 20261123


def paragraphs(text):
    # Info files separate nodes with 0x1f; drop those bytes and the tag tables.
    for node in text.split(b"\x1f"):
        if node.lstrip().startswith((b"Tag Table:", b"End Tag Table")):
            continue
        for para in node.split(b"\n\n"):
            para = para.strip(b"\n")
            if para:
                yield para


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__.strip().splitlines()[-1].strip())
    out = Path(sys.argv[1])
    src = Path(sys.argv[2] if len(sys.argv) == 3 else "/usr/share/info")
    files = sorted(p for p in src.iterdir() if p.name.endswith(".gz") and ".info" in p.name)
    if not files:
        sys.exit(f"no *.info*.gz manuals under {src}; install texinfo-documented packages "
                 f"(coreutils, grep, sed, ...) or pass another INFO_DIR")
    chunks, cur = [], []
    size = 0
    seen = set()
    for f in files:
        for para in paragraphs(gzip.decompress(f.read_bytes())):
            # Every manual carries the GNU FDL and similar boilerplate: keep the
            # first copy of a paragraph only, so held-out text is not memorised text.
            key = hashlib.sha1(para).digest()
            if key in seen:
                continue
            seen.add(key)
            cur.append(para)
            size += len(para) + 2
            if size >= CHUNK:
                chunks.append(b"\n\n".join(cur))
                cur, size = [], 0
        if cur:
            chunks.append(b"\n\n".join(cur))
            cur, size = [], 0
    random.Random(SEED).shuffle(chunks)
    data = b"\n\n".join(chunks) + b"\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    print(f"{out}: {len(data)} bytes from {len(files)} manuals in {src}, "
          f"sha256 {hashlib.sha256(data).hexdigest()}")


if __name__ == "__main__":
    main()
