// Device memory entry points the runtime needs from a backend. A CUDA build
// links runtime/cuda/device.cu; a CPU-only build links runtime/no_cuda, whose
// functions throw "[cuda] ... built without CUDA".
#pragma once

#include <cstddef>
#include <string>

#include "runtime/tensor.h"  // Device

namespace lintrain {

bool cuda_available();                 // a usable GPU is present (false without CUDA)
int cuda_device_count();               // 0 when none or built without CUDA
// The process's GPU: every later CUDA allocation, copy and op of this
// process, on any thread, runs on device `index` (the trainer picks it from
// the rank's index on its node). Throws naming the index and the count when
// it does not exist. The device's name and memory, for the run's report.
void cuda_use_device(int index);
int cuda_current_device();             // the index cuda_use_device set, or -1
std::string cuda_device_description(int index);  // "NVIDIA H200 (sm_90, 139.8 GiB)"
void* cuda_malloc_zeroed(size_t nbytes);
void cuda_free(void* p) noexcept;
void cuda_copy_to_device(void* dst, const void* src, size_t nbytes);
void cuda_copy_to_host(void* dst, const void* src, size_t nbytes);
void cuda_memset_zero(void* dst, size_t nbytes);

// nbytes from host memory into memory on `device` (a plain copy on the CPU,
// an upload on CUDA). For state set up before training (tables, decays) and
// each step's token ids.
void copy_from_host(Device device, void* dst, const void* src, size_t nbytes);
// nbytes from memory on `device` into host memory (a plain copy on the CPU, a
// download on CUDA, which waits for the work queued before it). For what only
// the host does: the loss read-back, checkpoints, exports, SVD refreshes.
void copy_to_host(Device device, void* dst, const void* src, size_t nbytes);

// Bytes and calls that crossed between host and GPU through the two copies
// above, since the process started (CPU-to-CPU copies are not counted: they
// move nothing between devices). The run reports them; tests check that a
// step moves only what it must.
struct HostTransferStats {
  uint64_t to_device_bytes = 0, to_device_calls = 0;
  uint64_t to_host_bytes = 0, to_host_calls = 0;
};
HostTransferStats host_transfer_stats();

}  // namespace lintrain
