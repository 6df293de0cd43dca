// GaLore (Zhao et al. 2024, "Memory-Efficient LLM Training by Gradient
// Low-Rank Projection") on one parameter group: Adam run in a rank-r subspace
// of each weight matrix's gradient, following the official galore_torch
// AdamW + GaLoreProjector (proj_type "std").
//
// For every matrix W (m, n) of the group, with r = min(rank, m, n) and its
// projector P from galore_projector.h ((r, n) when m >= n, (m, r) when m < n):
//   if t % update_proj_gap == 0:  P = top-r singular vectors of G    (t = steps before this one)
//   R = G P^T (m, r)   or   P^T G (r, n)                            (project)
//   t = t + 1
//   m = b1 m + (1 - b1) R,   v = b2 v + (1 - b2) R^2                (moments live in R's shape)
//   N = m / (sqrt(v) + eps)
//   W = W - lr sqrt(1 - b2^t) / (1 - b1^t) * scale * (N P  or  P N) (project back)
//   W = W - lr * wd * W                                             (decoupled decay, after the update)
// The moments are NOT reset when P is refreshed, and the step counter and
// bias correction run on, as in the official code: after a refresh the old
// moments are read in the new projector's coordinates. (That is why the
// projector fixes the sign of its singular vectors; see galore_projector.h.)
//
// Only matrices: a tensor of any other rank in the group is a ConfigError
// (the optim.groups rule that gives it GaLore wants `ndim: 2`).
//
// State, one flat buffer (4 bytes per value, each view padded to 16):
//   "<param>/projector"   (r, n) or (m, r)
//   "<param>/exp_avg"     (m, r) or (r, n)
//   "<param>/exp_avg_sq"  (m, r) or (r, n)
// so 4 r (min(m, n) + 2 max(m, n)) bytes per matrix instead of AdamW's 8 m n
// (a 512 x 1376 matrix at r = 128: 1.59 MiB instead of 5.38 MiB), and the
// words "step" and, for svd: randomized, "rng/0".."rng/5": the generator of
// the Gaussian sketches, so a restored run draws the same subspaces.
//
// Scratch (not state; allocated once, shared by the group's matrices and sized
// for the largest): R (r, max(m, n)), plus for the exact SVD a copy of the
// gradient, its U (min^2) and LAPACK's ~5 min(m, n)^2 workspace (9 MiB for
// 512 x 1376), for the randomized one about 2 k max(m, n) with k = r + oversample.
#pragma once

#include <vector>

#include "optim/galore_projector.h"
#include "optim/optimizer.h"
#include "runtime/host_staging.h"

namespace lintrain {

class Galore : public Optimizer {
 public:
  // Throws ConfigError when a tensor of the group is not 2-D.
  Galore(const Context& ctx, const OptimConfig& cfg, const ParamGroup& group, const ParamTable& table, uint64_t seed);
  void step(FlatBuffer& params, const FlatBuffer& grads, double lr) override;
  const char* name() const override { return "galore"; }
  size_t state_bytes() const override;
  std::vector<StateTensor> state_tensors() override;
  std::vector<StateWord> state_words() override;
  int64_t step_count() const override { return static_cast<int64_t>(t_); }

  // The state table: "<param>/projector", "<param>/exp_avg", "<param>/exp_avg_sq"
  // per tensor, in group order. Throws ConfigError for a tensor that is not 2-D.
  static ParamTable state_layout(const OptimConfig& cfg, const ParamGroup& group, const ParamTable& table);

 private:
  // One matrix of the group and where its state lives.
  struct Matrix {
    int param;      // view in the parameter table
    int m, n, r;    // W (m, n), rank r
    bool left;      // m < n: P (m, r), R (r, n); else P (r, n), R (m, r)
    int projector;  // views in state_table_
    int exp_avg;
    int exp_avg_sq;
  };

  Context ctx_;
  const ParamTable& table_;
  ParamGroup group_;
  double b1_, b2_, eps_, scale_;
  uint64_t gap_;
  bool randomized_;
  std::vector<Matrix> matrices_;
  ParamTable state_table_;
  FlatBuffer state_;
  uint64_t t_ = 0;
  RngWords rng_;
  GaloreProjector projector_;
  Tensor lowrank_;  // on the device: R, then N, of the matrix being updated: r * max(m, n)
  // The refresh's SVD runs on the host (LAPACK): the gradient goes there and
  // the projector comes back (copies only on a GPU context).
  HostStaging grad_host_, projector_host_;
};

extern const UpdateRuleInfo kGaloreRule;

}  // namespace lintrain
