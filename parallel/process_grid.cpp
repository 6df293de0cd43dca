// ProcessGrid: validation and the two splits (see process_grid.h).
#include "parallel/process_grid.h"

#include "runtime/error.h"

namespace lintrain {

void validate_parallel_layout(const ParallelConfig& cfg, int world_size) {
  if (cfg.sequence < 1) throw ConfigError(str_cat("parallel.sequence must be at least 1, got ", cfg.sequence));
  if (cfg.data < 1) throw ConfigError(str_cat("parallel.data must be at least 1, got ", cfg.data));
  const long long needed = static_cast<long long>(cfg.sequence) * cfg.data;
  if (needed != world_size)
    throw ConfigError(str_cat("parallel.sequence (", cfg.sequence, ") x parallel.data (", cfg.data, ") = ", needed,
                              " ranks, but the job has ", world_size, "; start ", needed,
                              " ranks or change parallel.*"));
}

ProcessGrid::ProcessGrid(const ParallelConfig& cfg, Communicator& world)
    : world_(&world), sp_size_(cfg.sequence), dp_size_(cfg.data) {
  validate_parallel_layout(cfg, world.size());
  const int r = world.rank();
  sp_ = world.split(/*color=*/r / sp_size_, /*key=*/r);
  dp_ = world.split(/*color=*/r % sp_size_, /*key=*/r);
  LT_CHECK(sp_ && sp_->size() == sp_size_ && sp_->rank() == sp_rank(), "[grid] SP group of rank ", r,
           " has the wrong shape");
  LT_CHECK(dp_ && dp_->size() == dp_size_ && dp_->rank() == dp_rank(), "[grid] DP group of rank ", r,
           " has the wrong shape");
}

std::string ProcessGrid::describe() const {
  return str_cat("rank ", rank(), " of ", world_size(), " = dp ", dp_rank(), " / sp ", sp_rank(), " (DP ", dp_size_,
                 " x SP ", sp_size_, ")");
}

}  // namespace lintrain
