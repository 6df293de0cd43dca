#!/usr/bin/env bash
# Gathers into .gpukit/ (ignored through .git/info/exclude, never committed)
# what the GPU machine lacks for scripts/gpu_check.sh: that machine has the
# CUDA toolkit, a compiler and CMake, but no network and none of lintrain's
# Debian packages. Run it here, before a device call that names .gpukit in
# `carry`:
#   .gpukit/debs/      the runtime .debs of OpenBLAS (OpenMP build), its LAPACK,
#                      LAPACKE and their Fortran runtime, kept compressed (about
#                      8 MB; gpu_check.sh unpacks them there with dpkg -x)
#   .gpukit/include/   cblas.h, openblas_config.h, lapacke.h and the headers
#                      they include, from the matching -dev packages,
#                      xxhash.h (used header-only) and nlohmann/ (nlohmann-json,
#                      header-only)
#   .gpukit/googletest GoogleTest's sources (Debian package googletest)
#   .gpukit/MANIFEST   package versions and sha256 sums
# Idempotent: it starts from an empty .gpukit each time.
set -euo pipefail
cd "$(dirname "$0")/.."
KIT=.gpukit
RUNTIME_DEBS=(libopenblas0-openmp liblapacke libtmglib3 libgfortran5 libquadmath0)
HEADER_DEBS=(libopenblas-openmp-dev liblapacke-dev)
GTEST_SRC=/usr/src/googletest

exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
grep -qxF '/.gpukit/' "$exclude" 2>/dev/null || echo '/.gpukit/' >>"$exclude"

if [ ! -f $GTEST_SRC/CMakeLists.txt ]; then
  echo "gpu_kit: $GTEST_SRC missing: install the Debian package googletest" >&2
  exit 1
fi

rm -rf $KIT
mkdir -p $KIT/debs $KIT/include
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chmod 777 "$tmp"  # apt-get download writes there as its sandbox user

echo "== apt-get download ${RUNTIME_DEBS[*]} ${HEADER_DEBS[*]}"
(cd "$tmp" && apt-get download "${RUNTIME_DEBS[@]}" "${HEADER_DEBS[@]}")
for p in "${RUNTIME_DEBS[@]}"; do mv "$tmp"/"${p}"_*.deb $KIT/debs/; done

# Headers only from the -dev packages (their static libraries are 60 MB).
for p in "${HEADER_DEBS[@]}"; do dpkg -x "$tmp"/"${p}"_*.deb "$tmp/dev"; done
cp "$tmp"/dev/usr/include/x86_64-linux-gnu/openblas-openmp/{cblas.h,openblas_config.h} $KIT/include/
cp "$tmp"/dev/usr/include/{lapack.h,lapacke.h,lapacke_config.h,lapacke_mangling.h} $KIT/include/
# xxHash (the checkpoint digests), used header-only there (XXH_INLINE_ALL).
cp /usr/include/xxhash.h $KIT/include/ || { echo "gpu_kit: /usr/include/xxhash.h missing: install libxxhash-dev" >&2; exit 1; }
# nlohmann-json (the JSON of the safetensors and checkpoint code), header-only.
cp -r /usr/include/nlohmann $KIT/include/ || { echo "gpu_kit: /usr/include/nlohmann missing: install nlohmann-json3-dev" >&2; exit 1; }

# GoogleTest alone (the top-level CMakeLists.txt builds googlemock only on request).
mkdir -p $KIT/googletest
cp $GTEST_SRC/CMakeLists.txt $KIT/googletest/
cp -r $GTEST_SRC/googletest $KIT/googletest/
rm -rf $KIT/googletest/googletest/docs $KIT/googletest/googletest/samples $KIT/googletest/googletest/test

{
  echo "# .gpukit, made by scripts/gpu_kit.sh on $(hostname) at $(date -u +%FT%TZ)"
  echo "googletest $(dpkg-query -W -f='${Version}' googletest)"
  (cd $KIT/debs && sha256sum ./*.deb)
} >$KIT/MANIFEST

echo "== .gpukit"
du -sh $KIT/*; du -sh $KIT
total_kib=$(du -sk $KIT | cut -f1)
if [ "$total_kib" -gt $((24 * 1024)) ]; then
  echo "gpu_kit: .gpukit is ${total_kib} KiB, more than the 24 MiB kept for it of the 64 MiB a device call carries" >&2
  exit 1
fi
