// For tests run under mpirun (tests/mpi/test_*.cpp): the process's MpiRuntime,
// created by mpi_test_main.cpp before GoogleTest starts.
#pragma once

#include "parallel/mpi_communicator.h"

namespace lintrain {
MpiRuntime& mpi_runtime();
}  // namespace lintrain
