# What `lintrain --version` prints (launch/build_info.h), as the library
# lintrain_build_info that only the `lintrain` binary links:
#   - build_info/configured.cpp (from cmake/build_info.cpp.in): the version
#     and what this configure found (CUDA, NCCL, BLAS, MPI). configure_file
#     rewrites it only when a value changed.
#   - build_info/git_commit.cpp: the git commit, written by cmake/git_commit.cmake
#     at every build (target lintrain_git_commit) and only when the commit or
#     its -dirty changed: an unchanged tree rebuilds nothing, a new commit
#     recompiles this one file and relinks lintrain.
# Needs LintrainDeps.cmake first (LINTRAIN_WITH_CUDA, LINTRAIN_NCCL_INCLUDE, ...).
set(LINTRAIN_BUILD_INFO_DIR ${CMAKE_CURRENT_BINARY_DIR}/build_info)

set(LINTRAIN_INFO_VERSION "${PROJECT_VERSION}")

if(LINTRAIN_WITH_CUDA)
  set(LINTRAIN_INFO_CUDA "yes, toolkit ${CUDAToolkit_VERSION} (architectures ${LINTRAIN_CUDA_ARCHS})")
elseif(LINTRAIN_CUDA STREQUAL "OFF")
  set(LINTRAIN_INFO_CUDA "no (configured with LINTRAIN_CUDA=OFF)")
elseif(LINTRAIN_SANITIZE)
  set(LINTRAIN_INFO_CUDA "no (a sanitizer build is CPU only)")
else()
  set(LINTRAIN_INFO_CUDA "no (no CUDA compiler found)")
endif()

if(LINTRAIN_WITH_NCCL)
  file(STRINGS ${LINTRAIN_NCCL_INCLUDE}/nccl.h nccl_defines REGEX "^#define NCCL_(MAJOR|MINOR|PATCH) ")
  set(nccl_version "")
  foreach(part MAJOR MINOR PATCH)
    string(REGEX MATCH "NCCL_${part} +([0-9]+)" _ "${nccl_defines}")
    list(APPEND nccl_version "${CMAKE_MATCH_1}")
  endforeach()
  list(JOIN nccl_version "." nccl_version)
  set(LINTRAIN_INFO_NCCL "yes, ${nccl_version} (${LINTRAIN_NCCL_LIB})")
elseif(LINTRAIN_WITH_CUDA)
  set(LINTRAIN_INFO_NCCL "no (nccl.h or libnccl not found)")
else()
  set(LINTRAIN_INFO_NCCL "no (needs the CUDA backend)")
endif()

set(LINTRAIN_INFO_BLAS "OpenBLAS")
if(EXISTS ${LINTRAIN_CBLAS_INCLUDE}/openblas_config.h)
  file(STRINGS ${LINTRAIN_CBLAS_INCLUDE}/openblas_config.h openblas_version REGEX "^#define OPENBLAS_VERSION ")
  if(openblas_version MATCHES "OpenBLAS ([0-9][0-9.]*)")
    set(LINTRAIN_INFO_BLAS "OpenBLAS ${CMAKE_MATCH_1}")
  endif()
endif()
string(APPEND LINTRAIN_INFO_BLAS " (${LINTRAIN_BLAS_LIB})")

# The MPI library's name and version from its launcher (Open MPI: "mpiexec
# (OpenRTE) 4.1.4"); the standard version CMake found in any case.
set(LINTRAIN_INFO_MPI "MPI ${MPI_CXX_VERSION} (${MPIEXEC_EXECUTABLE})")
if(MPIEXEC_EXECUTABLE)
  execute_process(COMMAND ${MPIEXEC_EXECUTABLE} --version OUTPUT_VARIABLE mpiexec_version ERROR_QUIET TIMEOUT 20)
  if(mpiexec_version MATCHES "(Open MPI|OpenRTE)\\)? ([0-9][0-9.]*)")
    set(LINTRAIN_INFO_MPI "Open MPI ${CMAKE_MATCH_2} (MPI ${MPI_CXX_VERSION}, ${MPIEXEC_EXECUTABLE})")
  elseif(mpiexec_version MATCHES "HYDRA")
    set(LINTRAIN_INFO_MPI "MPICH (MPI ${MPI_CXX_VERSION}, ${MPIEXEC_EXECUTABLE})")
  endif()
endif()

# The values are C string literals: quotes and backslashes escaped.
foreach(var LINTRAIN_INFO_VERSION LINTRAIN_INFO_CUDA LINTRAIN_INFO_NCCL LINTRAIN_INFO_BLAS LINTRAIN_INFO_MPI)
  string(REPLACE "\\" "\\\\" ${var} "${${var}}")
  string(REPLACE "\"" "\\\"" ${var} "${${var}}")
endforeach()
configure_file(${CMAKE_CURRENT_SOURCE_DIR}/cmake/build_info.cpp.in ${LINTRAIN_BUILD_INFO_DIR}/configured.cpp @ONLY)

find_package(Git QUIET)
set(LINTRAIN_GIT_COMMIT_CMD ${CMAKE_COMMAND} -DSOURCE_DIR=${CMAKE_CURRENT_SOURCE_DIR}
    -DGIT_EXECUTABLE=${GIT_EXECUTABLE} -DOUT=${LINTRAIN_BUILD_INFO_DIR}/git_commit.cpp
    -P ${CMAKE_CURRENT_SOURCE_DIR}/cmake/git_commit.cmake)
execute_process(COMMAND ${LINTRAIN_GIT_COMMIT_CMD})  # so that the file exists before the first build
add_custom_target(lintrain_git_commit
  COMMAND ${LINTRAIN_GIT_COMMIT_CMD}
  BYPRODUCTS ${LINTRAIN_BUILD_INFO_DIR}/git_commit.cpp
  COMMENT "lintrain: the git commit of this build"
  VERBATIM)
add_library(lintrain_build_info STATIC ${LINTRAIN_BUILD_INFO_DIR}/configured.cpp
                                       ${LINTRAIN_BUILD_INFO_DIR}/git_commit.cpp)
add_dependencies(lintrain_build_info lintrain_git_commit)
target_include_directories(lintrain_build_info PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
message(STATUS "lintrain: version ${PROJECT_VERSION}, MPI: ${LINTRAIN_INFO_MPI}")
