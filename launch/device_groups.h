// Where a rank computes (run.device) and the groups its device buffers travel
// in. On the CPU there is nothing to set up: the model's SP group is the
// grid's and the gradient all-reduce runs over `world`, all host buffers.
//
// On CUDA the rank takes the GPU of its index on the node (local rank), and
// the two groups whose buffers live on the GPU (the SP group of the LASP-2 /
// LASP-2H exchanges, and all ranks for the gradient all-reduce) get device
// communicators of their own:
//   nccl    when the build has NCCL and no two ranks of a node share a GPU
//           (the NCCL unique id goes out over the host group, MPI);
//   staged  otherwise: the host group's MPI collectives with the device
//           buffers copied through host memory (parallel/staged_communicator.h).
//           NCCL refuses two ranks on one GPU, so this is how several ranks
//           share one GPU (a one-GPU machine testing SP or DP); it is for
//           correctness, not speed.
// Every rank makes the same choice (it is agreed over `world`).
#pragma once

#include <memory>
#include <string>

#include "parallel/communicator.h"
#include "parallel/process_grid.h"
#include "runtime/config/config.h"

namespace lintrain {

class DeviceGroups {
 public:
  // Collective over `world`. local_rank / local_ranks: this rank's index
  // among the ranks of its node, and their count. Throws Error naming the
  // problem and the fix when run.device is cuda and no GPU is usable.
  DeviceGroups(const RunConfig& cfg, const ProcessGrid& grid, Communicator& world, int local_rank, int local_ranks);
  ~DeviceGroups();

  Device device() const { return device_; }
  int gpu() const { return gpu_; }  // CUDA device index, -1 on the CPU
  // The SP group and the all-ranks group for device buffers.
  Communicator& sp() const { return sp_ ? *sp_ : grid_.sp(); }
  Communicator& all() const { return all_ ? *all_ : world_; }
  // "cpu", or "cuda:0 NVIDIA H200 (sm_90, 139.8 GiB), collectives nccl", for the run's header.
  const std::string& describe() const { return describe_; }

 private:
  const ProcessGrid& grid_;
  Communicator& world_;
  Device device_ = Device::CPU;
  int gpu_ = -1;
  std::unique_ptr<Communicator> sp_, all_;
  std::string describe_ = "cpu";
};

}  // namespace lintrain
