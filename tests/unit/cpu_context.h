// The CPU Context of tests that call ops or build layers directly: one arena
// per thread (SP test ranks are threads), grown to what the next call needs.
// Layers reserve their own share when built; a test calling an op directly
// passes the op's *_scratch_bytes, so a sizing bug still shows up as an error.
#pragma once

#include <cstddef>

#include "runtime/context.h"

namespace lintrain::test {

inline const Context& cpu_context(size_t scratch_bytes = 0) {
  thread_local Arena arena(Device::CPU);
  thread_local Context ctx = [] {
    Context c;
    c.scratch = &arena;
    return c;
  }();
  arena.reserve(scratch_bytes);
  return ctx;
}

}  // namespace lintrain::test
