// main() of every unit-test executable: the same BLAS kernel selection as the
// `lintrain` command (see select_blas_kernels), then GoogleTest.
#include <gtest/gtest.h>

#include "runtime/cpu/gemm.h"

int main(int argc, char** argv) {
  lintrain::select_blas_kernels(argc, argv);
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
