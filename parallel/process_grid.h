// The DP x SP layout of a job's ranks, from the run file's parallel section.
//
//   world rank = dp_rank * SP + sp_rank        SP = parallel.sequence
//                                              DP = parallel.data
//
// Sequence-parallel groups are runs of consecutive ranks (launchers place
// consecutive ranks on one node, so an SP group's per-layer AllGathers stay on
// the fast intra-node links); rank r holds chunk sp_rank of its group's
// sequences and batch shard dp_rank. Example, SP = 2 x DP = 2:
//
//   world rank   0  1  2  3
//   sp_rank      0  1  0  1      sp() groups {0,1} {2,3}
//   dp_rank      0  0  1  1      dp() groups {0,2} {1,3}
//
// Gradients are all-reduced over world() (every rank holds every parameter:
// SP ranks hold partial sums over sequence chunks, DP ranks over batches).
#pragma once

#include <memory>
#include <string>

#include "parallel/communicator.h"
#include "runtime/config/config.h"

namespace lintrain {

// Throws ConfigError unless sequence >= 1, data >= 1 and sequence * data ==
// world_size, saying which numbers disagree and how to fix it.
void validate_parallel_layout(const ParallelConfig& cfg, int world_size);

class ProcessGrid {
 public:
  // Collective over `world` (splits it twice; every rank must construct its
  // grid at the same point). `world` is borrowed and must outlive the grid;
  // sp() and dp() are owned by the grid and of the same kind as `world`.
  ProcessGrid(const ParallelConfig& cfg, Communicator& world);

  int rank() const { return world_->rank(); }
  int world_size() const { return world_->size(); }
  int sp_size() const { return sp_size_; }
  int dp_size() const { return dp_size_; }
  int sp_rank() const { return rank() % sp_size_; }
  int dp_rank() const { return rank() / sp_size_; }

  Communicator& world() const { return *world_; }
  Communicator& sp() const { return *sp_; }  // this rank's sequence-parallel group
  Communicator& dp() const { return *dp_; }  // ranks holding the same sequence chunk

  // "rank 3 of 4 = dp 1 / sp 1 (DP 2 x SP 2)", for logs.
  std::string describe() const;

 private:
  Communicator* world_;
  int sp_size_, dp_size_;
  std::unique_ptr<Communicator> sp_, dp_;
};

}  // namespace lintrain
