#include "launch/device_groups.h"

#include "parallel/nccl/nccl_communicator.h"
#include "parallel/staged_communicator.h"
#include "runtime/device.h"
#include "runtime/error.h"

namespace lintrain {

DeviceGroups::DeviceGroups(const RunConfig& cfg, const ProcessGrid& grid, Communicator& world, int local_rank,
                           int local_ranks)
    : grid_(grid), world_(world) {
  if (cfg.run.device != "cuda") return;
  device_ = Device::CUDA;
  // Every rank checks its own GPU, then all learn whether any rank failed:
  // none is left waiting in a collective for a rank that stopped.
  const int count = cuda_device_count();
  std::string problem;
  if (!LINTRAIN_HAS_CUDA)
    problem = "this lintrain was built without CUDA; rebuild with -DLINTRAIN_CUDA=ON, or set run.device=cpu";
  else if (count == 0)
    problem = "run.device is cuda but this process sees no GPU (check nvidia-smi and CUDA_VISIBLE_DEVICES), or "
              "set run.device=cpu";
  double failed[2] = {problem.empty() ? 0.0 : 1.0, local_ranks > count ? 1.0 : 0.0};
  world.all_reduce_f64(failed, 2);
  if (!problem.empty()) throw Error(str_cat("[run.device] ", problem));
  if (failed[0] > 0)
    throw Error(str_cat("[run.device] ", static_cast<int>(failed[0]), " rank(s) of this job have no usable GPU (their "
                        "own error says why); every rank needs one for run.device: cuda"));
  gpu_ = local_rank % count;
  cuda_use_device(gpu_);
  const bool shared = failed[1] > 0;  // on some node more ranks than GPUs
  describe_ = str_cat("cuda:", gpu_, " ", cuda_device_description(gpu_));
  if (world.size() == 1) return;
  if (LINTRAIN_HAS_NCCL && !shared) {
    all_ = make_nccl_communicator(world, gpu_);
    sp_ = make_nccl_communicator(grid.sp(), gpu_);
    describe_ += ", collectives nccl";
  } else {
    all_ = make_staged_communicator(world.split(0, world.rank()), Device::CUDA);
    sp_ = make_staged_communicator(grid.sp().split(0, grid.sp().rank()), Device::CUDA);
    describe_ += shared ? str_cat(", collectives ", world.name(), " staged through the host (", local_ranks,
                                  " ranks share ", count, " GPU(s) on a node: NCCL needs a GPU per rank)")
                        : str_cat(", collectives ", world.name(), " staged through the host (built without NCCL)");
  }
}

DeviceGroups::~DeviceGroups() = default;

}  // namespace lintrain
