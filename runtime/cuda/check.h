// One check macro family for the GPU libraries: on failure each throws
// lintrain::Error "[lib] CALL failed at FILE:LINE on rank R (host H): the
// library's message" (runtime/process.h formats it, as it does MPI's), so a
// failure in a job of many ranks says where it happened. LT_NCCL_CHECK lives
// beside the NCCL communicator (parallel/nccl), the one user of nccl.h, in
// the same form.
#pragma once

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "runtime/error.h"
#include "runtime/process.h"

#define LT_CUDA_CHECK(call)                                                                    \
  do {                                                                                         \
    cudaError_t lt_err_ = (call);                                                              \
    if (lt_err_ != cudaSuccess)                                                                \
      ::lintrain::throw_call_error("cuda", #call, __FILE__, __LINE__, cudaGetErrorString(lt_err_)); \
  } while (0)

#define LT_CUBLAS_CHECK(call)                                                                  \
  do {                                                                                         \
    cublasStatus_t lt_st_ = (call);                                                            \
    if (lt_st_ != CUBLAS_STATUS_SUCCESS)                                                       \
      ::lintrain::throw_call_error("cublas", #call, __FILE__, __LINE__, cublasGetStatusString(lt_st_)); \
  } while (0)

#define LT_CUBLASLT_CHECK(call)                                                                \
  do {                                                                                         \
    cublasStatus_t lt_st_ = (call);                                                            \
    if (lt_st_ != CUBLAS_STATUS_SUCCESS)                                                       \
      ::lintrain::throw_call_error("cublaslt", #call, __FILE__, __LINE__, cublasGetStatusString(lt_st_)); \
  } while (0)

// After a kernel launch: a bad configuration (grid, block, shared memory)
// shows up here, named by the launcher that made it.
#define LT_CUDA_CHECK_LAUNCH(kernel) LT_CUDA_CHECK((kernel, cudaGetLastError()))
