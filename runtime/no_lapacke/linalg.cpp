// Linked in place of runtime/cpu/linalg.cpp when CMake found no LAPACKE: the
// build still links, and whatever needs a factorization (GaLore's projector)
// throws a clear error instead.
#include "runtime/cpu/linalg.h"

#include "runtime/error.h"

namespace lintrain {

namespace {
[[noreturn]] void no_lapacke(const char* op) {
  throw Error(str_cat("[", op, "] this lintrain was built without LAPACKE; install it (Debian: liblapacke-dev, "
                      "see scripts/install-deps.sh) and rebuild"));
}
}  // namespace

bool lapack_available() { return false; }
void LapackWorkspace::reserve_svd(int, int) {}
void LapackWorkspace::reserve_qr(int, int) {}
void LapackWorkspace::left_singular_vectors(float*, int, int, float*, float*) { no_lapacke("svd"); }
void LapackWorkspace::orthonormalize_rows(float*, int, int) { no_lapacke("qr"); }

}  // namespace lintrain
