// One check macro family for CUDA and cuBLAS calls: on failure it throws
// lintrain::Error with the call's text, file:line and the library's message.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "runtime/error.h"

#define LT_CUDA_CHECK(call)                                                                    \
  do {                                                                                         \
    cudaError_t lt_err_ = (call);                                                              \
    if (lt_err_ != cudaSuccess)                                                                \
      throw ::lintrain::Error(::lintrain::str_cat("[cuda] ", #call, " failed at ", __FILE__, ":", \
                                                  __LINE__, ": ", cudaGetErrorString(lt_err_))); \
  } while (0)

#define LT_CUBLAS_CHECK(call)                                                                  \
  do {                                                                                         \
    cublasStatus_t lt_st_ = (call);                                                            \
    if (lt_st_ != CUBLAS_STATUS_SUCCESS)                                                       \
      throw ::lintrain::Error(::lintrain::str_cat("[cublas] ", #call, " failed at ", __FILE__, ":", \
                                                  __LINE__, ": ", cublasGetStatusString(lt_st_))); \
  } while (0)

// After a kernel launch: a bad configuration (grid, block, shared memory)
// shows up here, named by the launcher that made it.
#define LT_CUDA_CHECK_LAUNCH(kernel) LT_CUDA_CHECK((kernel, cudaGetLastError()))
