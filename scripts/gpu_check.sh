#!/usr/bin/env bash
# The GPU check, run ON the GPU machine from the repo root with $OUT set (the
# device tool's folder of files that come back), .gpukit carried (made here by
# scripts/gpu_kit.sh): builds tests/gpu (every tests/unit/test_ops*.cpp, each
# op's CUDA body against its CPU body, and tests/unit/test_train_device.cpp,
# training on the GPU against the CPU: FP32, BF16, every optimizer, SP=2 and
# DP=2 as two ranks staged through the host) and runs each test binary.
#
#   $OUT/log.txt          everything printed: versions, configure, build, tests
#   $OUT/gpu_check.txt    the summary: per test binary and per test case
#                         passed / failed / skipped, the failures' messages
#                         (they carry the normalised error and the tolerance)
#   $OUT/<test>.xml       GoogleTest's XML report of each binary
#   $OUT/bench_gpu.md     the benchmark's tables (bench/gpu/bench_gpu.cpp)
#
# Exits non-zero when the build or any test fails, when a test binary is
# missing, or when a CUDA case skipped for want of a GPU. To dry-run on a
# machine without a GPU, set GPU_CHECK_ALLOW_NO_GPU=1: the CUDA cases then
# skip ("no CUDA GPU") and that is not a failure.
#
# Knobs (environment): JOBS (16), LINTRAIN_CUDA_ARCHS (90a), GPU_CHECK_BUILD
# (/tmp/gpukit/build), GPU_CHECK_KIT_ROOT (/tmp/gpukit/root, where the .debs
# are unpacked), BUILD_TIMEOUT (270 s), TEST_TIMEOUT (60 s per binary),
# GPU_CHECK_CUDA_FLAGS (extra nvcc flags), GPU_CHECK_MEMCHECK=1 (the CUDA
# cases again under compute-sanitizer memcheck; off by default: it is slower),
# GPU_CHECK_BENCH (1: run bench_gpu after the tests), BENCH_TIMEOUT (180 s),
# BENCH_ARGS (e.g. --quick).
set -uo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?gpu_check: set OUT to the folder for the log and the summary}"
mkdir -p "$OUT"
JOBS=${JOBS:-16}
ARCHS=${LINTRAIN_CUDA_ARCHS:-90a}
BUILD=${GPU_CHECK_BUILD:-/tmp/gpukit/build}
KIT_ROOT=${GPU_CHECK_KIT_ROOT:-/tmp/gpukit/root}
BUILD_TIMEOUT=${BUILD_TIMEOUT:-270}
TEST_TIMEOUT=${TEST_TIMEOUT:-60}
ALLOW_NO_GPU=${GPU_CHECK_ALLOW_NO_GPU:-0}
SUMMARY=$OUT/gpu_check.txt
KIT_LIBDIRS=$KIT_ROOT/usr/lib/x86_64-linux-gnu/openblas-openmp:$KIT_ROOT/usr/lib/x86_64-linux-gnu

say() { echo "$*" | tee -a "$SUMMARY"; }
section() { echo; echo "== $* ($(date -u +%T))"; }

# A .deb's files under $2: dpkg -x where dpkg is, else Python reads the ar
# archive and its data.tar.* itself.
unpack_deb() {
  if command -v dpkg >/dev/null; then dpkg -x "$1" "$2"; return; fi
  python3 - "$1" "$2" <<'EOF'
import io, sys, tarfile
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"!<arch>\n", "not a .deb: " + sys.argv[1]
pos = 8
while pos < len(data):
    name, size = data[pos:pos + 16].decode().strip().rstrip("/"), int(data[pos + 48:pos + 58])
    pos += 60
    if name.startswith("data.tar"):
        kw = {"filter": "tar"} if hasattr(tarfile, "tar_filter") else {}  # Python >= 3.12
        tarfile.open(fileobj=io.BytesIO(data[pos:pos + size])).extractall(sys.argv[2], **kw)
    pos += size + (size & 1)
EOF
}

# A tool from PATH, else from the pip package of that name (the GPU image
# carries CMake and ninja as Python packages).
find_tool() {
  command -v "$1" 2>/dev/null && return
  for d in /opt/torch/.venv/bin /usr/local/bin; do [ -x "$d/$1" ] && { echo "$d/$1"; return; }; done
  python3 -c "import $1, os; print(os.path.join($1.$2, '$1'))" 2>/dev/null
}

main() {
  local t0 rc=0 failed=0
  t0=$(date +%s)
  : >"$SUMMARY"
  local commit='? (no git here)'
  if git rev-parse --short HEAD >/dev/null 2>&1; then
    commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- runtime layers optim parallel tests 2>/dev/null || echo ' (sources changed since this commit)')
  fi
  say "lintrain gpu check, $(date -u +%FT%TZ), commit $commit"
  say "sources: $(cat runtime/*.cpp runtime/cpu/*.cpp runtime/cuda/*.cu layers/*.cpp optim/*.cpp parallel/*.cpp tests/unit/test_ops*.cpp tests/unit/test_train_device.cpp tests/unit/*.h | sha256sum | cut -c1-16) (sha256 of runtime/, layers/, optim/, parallel/ and the GPU tests)"

  section "machine"
  uname -a
  nproc
  local have_gpu=0
  if command -v nvidia-smi >/dev/null && nvidia-smi; then
    have_gpu=1
    say "gpu: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -1)"
  else
    say "gpu: none (nvidia-smi missing or failing)"
  fi
  if [ $have_gpu = 0 ] && [ "$ALLOW_NO_GPU" != 1 ]; then
    say "FAIL: no GPU here; set GPU_CHECK_ALLOW_NO_GPU=1 for a dry run"
    return 1
  fi

  local nvcc cmake ninja
  nvcc=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
  cmake=$(find_tool cmake CMAKE_BIN_DIR)
  ninja=$(find_tool ninja BIN_DIR)
  "$nvcc" --version || { say "FAIL: no nvcc"; return 1; }
  [ -n "$cmake" ] && "$cmake" --version || { say "FAIL: no cmake"; return 1; }
  c++ --version | head -1
  say "tools: nvcc $("$nvcc" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'), $("$cmake" --version | head -1)," \
      "$(c++ --version | head -1), ninja ${ninja:-none}"

  section "unpack .gpukit"
  if ! ls .gpukit/debs/*.deb >/dev/null 2>&1 || [ ! -f .gpukit/googletest/CMakeLists.txt ]; then
    say "FAIL: .gpukit is incomplete: run scripts/gpu_kit.sh here and name .gpukit in carry"
    return 1
  fi
  rm -rf "$KIT_ROOT"
  mkdir -p "$KIT_ROOT"
  for deb in .gpukit/debs/*.deb; do
    unpack_deb "$deb" "$KIT_ROOT" || { say "FAIL: could not unpack $deb"; return 1; }
  done
  ls -l "$KIT_ROOT"/usr/lib/x86_64-linux-gnu "$KIT_ROOT"/usr/lib/x86_64-linux-gnu/openblas-openmp

  section "configure (archs $ARCHS)"
  local gen=() cuda_flags=${GPU_CHECK_CUDA_FLAGS:-}
  [ -n "$ninja" ] && gen=(-G Ninja -DCMAKE_MAKE_PROGRAM="$ninja")
  configure() {
    # CMAKE_POLICY_VERSION_MINIMUM: a CMake 4 (the pip package) still accepts
    # GoogleTest 1.12's cmake_minimum_required; older CMakes ignore it.
    rm -rf "$BUILD"
    "$cmake" -S tests/gpu -B "$BUILD" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_POLICY_VERSION_MINIMUM=3.5 \
      -DCMAKE_CUDA_COMPILER="$nvcc" -DCMAKE_CUDA_FLAGS="$cuda_flags" -DLINTRAIN_CUDA_ARCHS="$ARCHS" \
      -DLINTRAIN_GPUKIT="$PWD/.gpukit" -DLINTRAIN_GPUKIT_ROOT="$KIT_ROOT" 2>&1 | tee "$KIT_ROOT/configure.log"
  }
  if ! configure; then
    # A host compiler newer than this nvcc supports: once more, told to allow it.
    if grep -q 'unsupported GNU version\|allow-unsupported-compiler' "$KIT_ROOT/configure.log"; then
      cuda_flags="$cuda_flags -allow-unsupported-compiler"
      say "configure: nvcc refused the host compiler; again with -allow-unsupported-compiler"
      configure || { say "FAIL: configure (see log.txt)"; return 1; }
    else
      say "FAIL: configure (see log.txt)"
      return 1
    fi
  fi

  section "build (-j$JOBS, at most ${BUILD_TIMEOUT}s)"
  local keep_going=(-k)
  [ -n "$ninja" ] && keep_going=(-k 0)
  local tb=$(date +%s)
  timeout "$BUILD_TIMEOUT" "$cmake" --build "$BUILD" -j"$JOBS" -- "${keep_going[@]}"
  rc=$?
  say "build: rc $rc in $(( $(date +%s) - tb ))s"
  [ $rc = 0 ] || failed=1

  section "tests"
  export LD_LIBRARY_PATH=$KIT_LIBDIRS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  local names
  names=$(tr ';' ' ' <"$BUILD/gpu_tests.txt" 2>/dev/null)
  [ -n "$names" ] || { say "FAIL: no test list ($BUILD/gpu_tests.txt)"; return 1; }
  local name bin out
  for name in $names; do
    bin=$BUILD/$name
    if [ ! -x "$bin" ]; then
      say "$name: BUILD FAILED (see log.txt)"
      failed=1
      continue
    fi
    # The kit's BLAS and LAPACK(E), not other copies on the machine.
    # ldd's output in a variable first: under pipefail, `ldd | grep -q` fails
    # whenever grep stops reading before ldd has written everything (SIGPIPE).
    local foreign libs
    libs=$(ldd "$bin")
    foreign=$(grep -E 'blas|lapack|tmglib|gfortran' <<<"$libs" | grep -v 'libcublas' | grep -v "=> $KIT_ROOT/")
    if ! grep -q "libopenblas.so.0 => $KIT_ROOT/" <<<"$libs" || [ -n "$foreign" ]; then
      say "$name: FAIL: the BLAS does not resolve in the kit: $(grep -E 'blas|lapack|tmglib|gfortran' <<<"$libs" | tr -s ' \t\n' ' ')"
      failed=1
      continue
    fi
    out=$BUILD/$name.out
    local tt=$(date +%s)
    timeout "$TEST_TIMEOUT" "$bin" --gtest_color=no --gtest_output=xml:"$OUT/$name.xml" 2>&1 | tee "$out"
    rc=$?
    local passed skipped nfailed nogpu
    passed=$(grep -c '^\[       OK \]' "$out")
    nfailed=$(grep -c '^\[  FAILED  \] [A-Za-z0-9_/]*\.[A-Za-z0-9_/]* (' "$out")
    skipped=$(grep -c '^\[  SKIPPED \] [A-Za-z0-9_/]*\.[A-Za-z0-9_/]* (' "$out")
    # Test cases that skipped saying "no CUDA GPU" (ops_backend.h's message).
    nogpu=$(awk '/^\[ RUN      \]/ { g = 0 } /no CUDA GPU/ { g = 1 }
                 /^\[  SKIPPED \] [^ ]+ \(/ { if (g) n++ } END { print n + 0 }' "$out")
    say "$name: rc $rc in $(( $(date +%s) - tt ))s: $passed passed, $nfailed failed, $skipped skipped ($nogpu for want of a GPU)"
    grep -E '^\[ *(OK|FAILED|SKIPPED) *\] [A-Za-z0-9_/]+\.[A-Za-z0-9_/]+ \(' "$out" | sed 's/^/  /' >>"$SUMMARY"
    if grep -q ': Failure$' "$out"; then
      echo "  failures (file:line, then gtest's message: the normalised error vs the tolerance):" >>"$SUMMARY"
      grep -A6 ': Failure$' "$out" | head -200 | sed 's/^/    /' >>"$SUMMARY"
    fi
    [ $rc = 124 ] && say "$name: FAIL: timed out after ${TEST_TIMEOUT}s"
    [ $rc = 0 ] || failed=1
    if [ "$nogpu" -gt 0 ] && [ "$ALLOW_NO_GPU" != 1 ]; then
      say "$name: FAIL: CUDA cases skipped for want of a GPU on a GPU machine"
      failed=1
    fi
  done

  # Opt-in (GPU_CHECK_MEMCHECK=1): the CUDA cases once more under
  # compute-sanitizer's memcheck (out-of-bounds and misaligned accesses).
  if [ "${GPU_CHECK_MEMCHECK:-0}" = 1 ] && [ $have_gpu = 1 ]; then
    section "memcheck"
    local sanitizer
    sanitizer=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
    for name in $names; do
      [ -x "$BUILD/$name" ] || continue
      timeout $((3 * TEST_TIMEOUT)) "$sanitizer" --tool memcheck --error-exitcode 99 \
        "$BUILD/$name" --gtest_color=no --gtest_filter='*Cuda*' >"$BUILD/$name.memcheck" 2>&1
      rc=$?
      cat "$BUILD/$name.memcheck"
      say "$name memcheck: rc $rc, $(grep -m1 'ERROR SUMMARY' "$BUILD/$name.memcheck" || echo 'no summary')"
      [ $rc = 0 ] || failed=1
    done
  fi

  # The benchmark last (tests first: a failing kernel's figures mean
  # nothing), bounded so the whole call fits the device time; its tables go
  # to $OUT/bench_gpu.md for bench/RESULTS.md. GPU_CHECK_BENCH=0 skips it.
  if [ "${GPU_CHECK_BENCH:-1}" = 1 ] && [ -x "$BUILD/bench_gpu" ]; then
    section "benchmark (at most ${BENCH_TIMEOUT:-180}s)"
    local tbench=$(date +%s)
    timeout "${BENCH_TIMEOUT:-180}" "$BUILD/bench_gpu" ${BENCH_ARGS:-} | tee "$OUT/bench_gpu.md"
    rc=${PIPESTATUS[0]}
    say "bench_gpu: rc $rc in $(( $(date +%s) - tbench ))s (tables in bench_gpu.md)"
  fi

  say "total: $(( $(date +%s) - t0 ))s; $([ $failed = 0 ] && echo PASS || echo FAIL)"
  return $failed
}

main 2>&1 | tee "$OUT/log.txt"
