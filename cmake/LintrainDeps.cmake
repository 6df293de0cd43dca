# Finds lintrain's dependencies (Debian packages, see scripts/install-deps.sh)
# and defines imported targets the rest of the build links against.
find_package(Threads REQUIRED)
find_package(OpenMP REQUIRED COMPONENTS CXX)
find_package(yaml-cpp REQUIRED)

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
if(LINTRAIN_LAPACKE_LIB AND LINTRAIN_LAPACKE_INCLUDE)
  target_link_libraries(lintrain::blas INTERFACE ${LINTRAIN_LAPACKE_LIB})
  set(LINTRAIN_HAS_LAPACKE ON)
endif()
message(STATUS "lintrain: BLAS ${LINTRAIN_BLAS_LIB}")

# CUDA: AUTO builds it when nvcc is found; ON fails without it; OFF skips it.
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
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES OR CMAKE_CUDA_ARCHITECTURES STREQUAL "52")
      set(CMAKE_CUDA_ARCHITECTURES 90)
    endif()
    set(CMAKE_CUDA_STANDARD 17)
    set(LINTRAIN_WITH_CUDA ON)
  elseif(LINTRAIN_CUDA STREQUAL "ON")
    message(FATAL_ERROR "lintrain: LINTRAIN_CUDA=ON but no CUDA compiler was found")
  endif()
endif()
message(STATUS "lintrain: CUDA backend ${LINTRAIN_WITH_CUDA}")
