#!/usr/bin/env bash
# TensorBoard event files, read by the tensorboard package's own reader
# (EventAccumulator, with its purge of orphaned data as TensorBoard runs it):
# a run killed -9 after step 8 (its newest checkpoint: step 6, or 3 when the
# kill beat step 6's asynchronous save) and resumed shows every step 1..12
# exactly once, each train/* and eval/* scalar equal to metrics.jsonl's
# value at that step (as float32, within one ulp); the killed run's own file
# does hold steps past the checkpoint, so the purge is what removes them
# (without the START the reader shows them twice). Every record's
# CRCs are also checked here, with a CRC-32C written in this script.
# run.tensorboard=false writes no event file.
#   usage: test_tensorboard.sh LINTRAIN_BIN WORK_DIR
set -euo pipefail
# shellcheck source=tests/e2e/launch_lib.sh
source "$(dirname "$0")/launch_lib.sh"
setup_test "$@"
export OMP_NUM_THREADS=1

python3 -c "import tensorboard.backend.event_processing.event_accumulator" >/dev/null 2>&1 ||
  skip "the tensorboard Python package is not importable (scripts/install-deps.sh installs it with pip)"

RUN="$REPO/tests/e2e/ckpt_small.yaml"
OUT="$WORK/run"
# A write every millisecond: the killed run's last steps reach its file before the kill.
SETS=(--set run.out_dir="$OUT" --set run.tensorboard_flush_s=0.001)

code=0
LINTRAIN_FAILPOINTS="train.kill-after-step@8" "$LINTRAIN" train "$RUN" "${SETS[@]}" >"$WORK/killed.log" 2>&1 || code=$?
[ "$code" -ne 0 ] || fail "the run meant to be killed after step 8 finished"
grep -q "failpoint train.kill-after-step" "$WORK/killed.log" || fail "not killed by the failpoint"
"$LINTRAIN" train "$RUN" "${SETS[@]}" >"$WORK/resumed.log" 2>&1 || { tail -5 "$WORK/resumed.log"; fail "the resumed run failed"; }
from=$(sed -n 's/^lintrain: resumed from .*step-[0-9]* at step \([0-9]*\) .*/\1/p' "$WORK/resumed.log")
[ "$from" = 6 ] || [ "$from" = 3 ] || { cat "$WORK/resumed.log"; fail "resumed from step '$from', want 6 (or 3)"; }
[ "$(find "$OUT" -maxdepth 1 -name 'events.out.tfevents.*' | wc -l)" -eq 2 ] || fail "want 2 event files in $OUT"

python3 - "$OUT" "$from" <<'PY' || fail "the event files do not hold what metrics.jsonl does (above)"
import glob, json, os, struct, sys

from tensorboard.backend.event_processing import event_accumulator
from tensorboard.compat.proto import event_pb2

out, resumed_from = sys.argv[1], int(sys.argv[2])

# CRC-32C (Castagnoli, reflected 0x82F63B78), and TFRecord's mask.
TABLE = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    TABLE.append(c)
def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = TABLE[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF
def masked(data):
    c = crc32c(data)
    return ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF
assert crc32c(b"123456789") == 0xE3069283

def records(path):
    data, at, events = open(path, "rb").read(), 0, []
    while at < len(data):
        header = data[at:at + 8]
        (n,) = struct.unpack("<Q", header)
        (hcrc,) = struct.unpack("<I", data[at + 8:at + 12])
        body = data[at + 12:at + 12 + n]
        (bcrc,) = struct.unpack("<I", data[at + 12 + n:at + 16 + n])
        assert hcrc == masked(header), f"{path}: bad length CRC at byte {at}"
        assert bcrc == masked(body), f"{path}: bad data CRC at byte {at}"
        e = event_pb2.Event()
        e.ParseFromString(body)
        events.append(e)
        at += 16 + n
    return events

files = sorted(glob.glob(os.path.join(out, "events.out.tfevents.*")))
killed, resumed = (records(f) for f in files)
for evs in (killed, resumed):
    assert evs[0].file_version == "brain.Event:2", evs[0]
    assert evs[1].session_log.status == event_pb2.SessionLog.START, evs[1]
assert killed[1].step == 0 and resumed[1].step == resumed_from + 1, (killed[1].step, resumed[1].step)
killed_steps = {e.step for e in killed if e.HasField("summary")}
assert max(killed_steps) > resumed_from, f"the killed run's file has no step past {resumed_from}: nothing to purge"

# metrics.jsonl: the reference (it holds every step once after the resume).
train, evals = {}, {}
for line in open(os.path.join(out, "metrics.jsonl")):
    r = json.loads(line)
    if "kind" not in r:
        train[r["step"]] = r
    elif r["kind"] == "eval":
        evals[r["step"]] = r
assert sorted(train) == list(range(1, 13)), sorted(train)

acc = event_accumulator.EventAccumulator(out, size_guidance={event_accumulator.SCALARS: 0})
acc.Reload()
f32 = lambda x: struct.unpack("<f", struct.pack("<f", x))[0]
def check(tag, rows, key):
    got = acc.Scalars(tag)
    steps = [s.step for s in got]
    assert steps == sorted(rows), f"{tag}: steps {steps}, want {sorted(rows)}"
    for s in got:
        # metrics.jsonl holds the double exactly (the shortest decimal that
        # reads back as it) and the event its float32: equal once rounded.
        want = rows[s.step][key]
        assert s.value == f32(want), \
            f"{tag} at step {s.step}: {s.value} != metrics.jsonl's {want}"
for key in ("loss", "lr", "grad_norm", "tokens_per_s", "gflops", "step_time_s", "mfu"):
    check("train/" + key, train, key)
# MFU = model FLOPs per token x tokens/s / peak: its ratio to tokens/s is a
# constant of each process (the peak is measured once, at start-up), so the
# killed run's steps and the resumed run's each share one.
def constant(steps):
    r = [train[s]["mfu"] / train[s]["tokens_per_s"] for s in steps]
    return all(x > 0 for x in r) and max(r) / min(r) - 1 < 1e-6
assert constant(range(1, resumed_from + 1)) and constant(range(resumed_from + 1, 13)), \
    [train[s]["mfu"] / train[s]["tokens_per_s"] for s in train]
check("eval/loss", evals, "loss")
assert sorted(evals) == [6, 12], sorted(evals)
print(f"tensorboard reader: steps 1..12 once each (resumed from {resumed_from}; the killed run had logged "
      f"up to {max(killed_steps)}), eval at 6 and 12, scalars equal metrics.jsonl, CRCs valid")
PY

# Turned off: no event file.
"$LINTRAIN" train "$RUN" --set run.out_dir="$WORK/off" --set run.tensorboard=false --set train.steps=2 \
  >"$WORK/off.log" 2>&1 || { tail -5 "$WORK/off.log"; fail "the run with run.tensorboard=false failed"; }
[ -z "$(find "$WORK/off" -name 'events.out.tfevents.*')" ] || fail "run.tensorboard=false wrote an event file"
note "passed"
