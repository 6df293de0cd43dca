#!/usr/bin/env bash
# Installs every dependency of lintrain from Debian packages (and PyPI for the
# test-only reference readers). Idempotent: a second run changes nothing and
# returns quickly. Needs root (or sudo).
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# clang + libclang-rt-dev: the fuzz targets (libFuzzer ships in the latter,
# which --no-install-recommends would otherwise leave out).
PKGS=(
  build-essential cmake pkg-config git
  openmpi-bin libopenmpi-dev
  libprotobuf-dev protobuf-compiler libgrpc++-dev protobuf-compiler-grpc
  libyaml-cpp-dev libxxhash-dev libcli11-dev nlohmann-json3-dev
  libopenblas-openmp-dev liblapacke-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  slurm-wlm munge libpmix-dev
  python3 python3-numpy
  clang libclang-rt-dev
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "install-deps: all Debian packages present"
fi

# Test-only reference reader for the safetensors format (the tests fall back to
# a reader written from the format description when it is absent).
PY=python3
if ! "$PY" -c "import safetensors, numpy" >/dev/null 2>&1; then
  "$PY" -m pip install -q safetensors numpy >/dev/null 2>&1 \
    || echo "install-deps: pip could not install safetensors (tests use the built-in reader)"
fi
# Hugging Face tokenizers, for scripts/prepare_data.py (text -> Megatron
# .bin/.idx with a real tokenizer); its e2e test skips without it.
if ! "$PY" -c "import tokenizers" >/dev/null 2>&1; then
  "$PY" -m pip install -q tokenizers >/dev/null 2>&1 \
    || echo "install-deps: pip could not install tokenizers (scripts/prepare_data.py and its e2e test need it)"
fi
# TensorBoard, whose own reader checks lintrain's event files in
# tests/e2e/test_tensorboard.sh (skipped without it), and to watch runs.
if ! "$PY" -c "import tensorboard" >/dev/null 2>&1; then
  "$PY" -m pip install -q tensorboard >/dev/null 2>&1 \
    || echo "install-deps: pip could not install tensorboard (tests/e2e/test_tensorboard.sh needs it)"
fi
# transformers (tokenizers only; no PyTorch needed): tests/e2e/test_megatron_data.sh
# loads an exported folder with AutoTokenizer (skipped without it).
if ! "$PY" -c "import transformers" >/dev/null 2>&1; then
  "$PY" -m pip install -q transformers >/dev/null 2>&1 \
    || echo "install-deps: pip could not install transformers (the AutoTokenizer check of tests/e2e/test_megatron_data.sh is skipped)"
fi
echo "install-deps: done"
