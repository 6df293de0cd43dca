// Failpoints: named places in the code where a test can make lintrain fail
// on purpose (kill -9 itself in the middle of publishing a checkpoint, make
// a gradient NaN at step 3), so every fault path is exercised
// deterministically instead of by timing. Off unless the environment says
//
//   LINTRAIN_FAILPOINTS="ckpt.before-rename@4,train.nan-grad@3,train.nan-grad@4"
//
// a comma-separated list of `name` (fires at every pass) or `name@N` (fires
// when the value the call site passes, usually the step, is N). The names in
// use are listed in the README's Tests section. With the variable unset a
// failpoint costs one load of a flag.
#pragma once

#include <cstdint>

namespace lintrain {

// Whether the failpoint `name` fires here for `value`.
bool failpoint(const char* name, int64_t value = -1);

// When failpoint(name, value) fires: SIGKILL this process (what `kill -9`
// or the OOM killer does: no destructors, no flushing, no atexit).
void failpoint_kill(const char* name, int64_t value = -1);

}  // namespace lintrain
