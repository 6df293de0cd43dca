# Finds lintrain's dependencies (Debian packages, see scripts/install-deps.sh)
# and defines imported targets the rest of the build links against.
find_package(Threads REQUIRED)
find_package(OpenMP REQUIRED COMPONENTS CXX)
find_package(yaml-cpp REQUIRED)
# nlohmann-json (Debian nlohmann-json3-dev, header-only): every JSON lintrain
# reads or writes (runtime/io/json.h).
find_package(nlohmann_json 3.11 REQUIRED)

# MPI (OpenMPI from Debian): processes, host collectives and the NCCL bootstrap.
# The C++ bindings are deprecated and unused: MPI_CXX_SKIP_MPICXX keeps mpi.h C-only.
set(MPI_CXX_SKIP_MPICXX ON CACHE BOOL "")
find_package(MPI REQUIRED COMPONENTS CXX)
message(STATUS "lintrain: MPI ${MPI_CXX_VERSION} (${MPIEXEC_EXECUTABLE})")

# BLAS: prefer OpenBLAS built for OpenMP, so a GEMM called inside one of our
# OpenMP regions runs on its own thread instead of oversubscribing the cores.
find_path(LINTRAIN_CBLAS_INCLUDE cblas.h
  HINTS /usr/include/x86_64-linux-gnu/openblas-openmp /usr/include/openblas
        /usr/include/x86_64-linux-gnu/openblas-pthread)
find_library(LINTRAIN_BLAS_LIB NAMES openblas
  HINTS /usr/lib/x86_64-linux-gnu/openblas-openmp /usr/lib/x86_64-linux-gnu/openblas-pthread)
if(NOT LINTRAIN_CBLAS_INCLUDE OR NOT LINTRAIN_BLAS_LIB)
  message(FATAL_ERROR "lintrain: OpenBLAS not found. Run scripts/install-deps.sh "
                      "(Debian package libopenblas-openmp-dev).")
endif()
find_library(LINTRAIN_LAPACKE_LIB NAMES lapacke)
find_path(LINTRAIN_LAPACKE_INCLUDE lapacke.h)
add_library(lintrain::blas INTERFACE IMPORTED)
target_include_directories(lintrain::blas INTERFACE ${LINTRAIN_CBLAS_INCLUDE})
target_link_libraries(lintrain::blas INTERFACE ${LINTRAIN_BLAS_LIB})
get_filename_component(LINTRAIN_BLAS_DIR ${LINTRAIN_BLAS_LIB} DIRECTORY)
# The Debian BLAS alternatives may point libopenblas.so.0 at the pthread build;
# an rpath to the directory we linked makes the loader pick the same one.
target_link_options(lintrain::blas INTERFACE "-Wl,-rpath,${LINTRAIN_BLAS_DIR}")
# LAPACK(E): the SVDs and QRs of GaLore and FRUGAL.
if(NOT LINTRAIN_LAPACKE_LIB OR NOT LINTRAIN_LAPACKE_INCLUDE)
  message(FATAL_ERROR "lintrain: LAPACKE not found. Run scripts/install-deps.sh "
                      "(Debian package liblapacke-dev).")
endif()
target_include_directories(lintrain::blas INTERFACE ${LINTRAIN_LAPACKE_INCLUDE})
target_link_libraries(lintrain::blas INTERFACE ${LINTRAIN_LAPACKE_LIB})
set(LINTRAIN_HAS_LAPACKE ON)
message(STATUS "lintrain: BLAS ${LINTRAIN_BLAS_LIB}")

# xxHash (Debian libxxhash-dev): the XXH3 checksums of checkpoint files.
find_path(LINTRAIN_XXHASH_INCLUDE xxhash.h)
find_library(LINTRAIN_XXHASH_LIB NAMES xxhash)
if(NOT LINTRAIN_XXHASH_INCLUDE OR NOT LINTRAIN_XXHASH_LIB)
  message(FATAL_ERROR "lintrain: xxHash not found. Run scripts/install-deps.sh "
                      "(Debian package libxxhash-dev).")
endif()
add_library(lintrain::xxhash INTERFACE IMPORTED)
target_include_directories(lintrain::xxhash INTERFACE ${LINTRAIN_XXHASH_INCLUDE})
target_link_libraries(lintrain::xxhash INTERFACE ${LINTRAIN_XXHASH_LIB})

# CLI11 (Debian libcli11-dev, header only): the command line of every
# subcommand and its --help (launch/cli.cpp).
find_package(CLI11 CONFIG)
if(NOT CLI11_FOUND)
  message(FATAL_ERROR "lintrain: CLI11 not found. Run scripts/install-deps.sh (Debian package libcli11-dev).")
endif()

# gRPC + protobuf (Debian libgrpc++-dev, protobuf-compiler-grpc): the
# checkpoint service and its clients.
find_package(Protobuf REQUIRED)
find_package(gRPC CONFIG)
find_program(LINTRAIN_GRPC_CPP_PLUGIN grpc_cpp_plugin)
if(NOT gRPC_FOUND OR NOT LINTRAIN_GRPC_CPP_PLUGIN OR NOT Protobuf_PROTOC_EXECUTABLE)
  message(FATAL_ERROR "lintrain: gRPC/protobuf not found. Run scripts/install-deps.sh (Debian packages "
                      "libgrpc++-dev, libprotobuf-dev, protobuf-compiler, protobuf-compiler-grpc).")
endif()
message(STATUS "lintrain: gRPC ${gRPC_VERSION}, protobuf ${Protobuf_VERSION}")

# CUDA: AUTO builds it when nvcc is found; ON fails without it; OFF skips it.
# LINTRAIN_CUDA_ARCHS: the GPU architectures the kernels are compiled for
# (CMake CUDA_ARCHITECTURES syntax): Ampere (sm_80, A100) and Hopper with its
# architecture-specific features (sm_90a, H100/H200) by default.
set(LINTRAIN_CUDA_ARCHS "80;90a" CACHE STRING "CUDA architectures of the kernels, e.g. 80;90a")
set(LINTRAIN_WITH_CUDA OFF)
if(NOT LINTRAIN_CUDA STREQUAL "OFF" AND NOT LINTRAIN_SANITIZE)
  include(CheckLanguage)
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    set(CMAKE_CUDA_STANDARD 17)
    set(LINTRAIN_WITH_CUDA ON)
  elseif(LINTRAIN_CUDA STREQUAL "ON")
    message(FATAL_ERROR "lintrain: LINTRAIN_CUDA=ON but no CUDA compiler was found")
  endif()
endif()
message(STATUS "lintrain: CUDA backend ${LINTRAIN_WITH_CUDA}")

# NCCL: device collectives, only with CUDA. The CUDA 13 toolkit ships it under
# lib/, distribution packages under the system library directories.
set(LINTRAIN_WITH_NCCL OFF)
if(LINTRAIN_WITH_CUDA)
  find_path(LINTRAIN_NCCL_INCLUDE nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS} /usr/local/cuda/include)
  find_library(LINTRAIN_NCCL_LIB NAMES nccl
    HINTS ${CUDAToolkit_LIBRARY_DIR} /usr/local/cuda/lib /usr/local/cuda/lib64)
  if(LINTRAIN_NCCL_INCLUDE AND LINTRAIN_NCCL_LIB)
    add_library(lintrain::nccl INTERFACE IMPORTED)
    target_include_directories(lintrain::nccl INTERFACE ${LINTRAIN_NCCL_INCLUDE})
    target_link_libraries(lintrain::nccl INTERFACE ${LINTRAIN_NCCL_LIB})
    set(LINTRAIN_WITH_NCCL ON)
  endif()
endif()
message(STATUS "lintrain: NCCL ${LINTRAIN_WITH_NCCL}")
