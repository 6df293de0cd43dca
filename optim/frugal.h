// FRUGAL (Zmushko et al., "FRUGAL: Memory-Efficient Optimization by Reducing
// State Overhead for Scalable Training", 2025) on one parameter group.
//
// Each weight's gradient G is split into a state-full part P(G), which lives in
// a small subspace and gets AdamW with moments for the subspace coordinates
// only, and the state-free remainder G - P(G), which gets signSGD, SGD or no
// update. For step t (1-based) of a weight W (m, n) with learning rate lr:
//   W = W * (1 - lr * wd)                                  (decoupled decay, whole weight)
//   R = coords(G)                         (m, r) = G P^T  for m >= n, P (r, n)
//                                         (r, n) = P^T G  for m <  n, P (m, r)
//   M = b1 M + (1 - b1) R,   V = b2 V + (1 - b2) R^2       (moments of R only)
//   W = W - lr * lift(M / (1 - b1^s) / (sqrt(V / (1 - b2^s)) + eps))
//   W = W - lr * inactive_lr_scale * f(G - lift(R))        f = sign | identity | 0
// with lift(X) = X P (m >= n) or P X (m < n), s the steps taken in the current
// subspace and r = max(1, round(density * min(m, n))), rounding half to even
// like the official code's Python round() (0.25 * 10 -> 2).
//
// proj_type picks the subspace, on the smaller side of each matrix:
//   svd        the top-r singular vectors of the current gradient (GaLore-style)
//   random     a uniformly random r-dim orthonormal basis (Gaussian + QR)
//   randk      r random columns (m >= n) or rows (m < n): P is rows of the
//              identity, so R gathers them and lift scatters them back
//   blockwise  whole tensors: a random set of the group's tensors gets plain
//              AdamW, the rest only the state-free rule (1-D tensors allowed).
//              Tensors are taken in a uniformly random order while the state-full
//              parameter count is below density * (group parameters), so the
//              last one taken overshoots by less than its own size.
// svd, random and randk project 2-D tensors only; a 1-D tensor in such a group is
// a ConfigError (the default optim.groups rules give FRUGAL only 2-D weights).
//
// Subspace changes, as the official code (philmz/FRUGAL) does with its default
// reset_statistics=True: a new subspace is chosen at steps 1, 1 + update_gap,
// 1 + 2 update_gap, ... from that step's gradient (svd) or the rule's RNG, and
// the moments are zeroed and the bias-correction counter restarts, so
// s = (t - 1) % update_gap + 1. The group's lr_scale (optim.groups[].lr_scale)
// plays the role of the official proj_params_lr_scale, except that here it
// scales the decay too (the official code decays with the unscaled lr).
//
// State: ONE flat buffer, laid out by state_layout():
//   svd / random, per tensor   "<name>/projector" P (r, n) for m >= n, (m, r) for m < n
//   randk, per tensor          "<name>/indices" (r): the chosen column (m >= n) or
//                              row (m < n) indices, ascending, as exact float integers
//   svd / random / randk       "<name>/exp_avg", "<name>/exp_avg_sq": (m, r) or (r, n)
//   blockwise                  "active" (T): 1 for the state-full tensors of the
//                              group (in group order), else 0;
//                              "exp_avg", "exp_avg_sq" (C): the state-full tensors'
//                              moments packed in group order, with a fixed capacity
//                              C = floor(density * group params) + largest tensor,
//                              enough for any draw, so the buffer never reallocates.
// Words: "step" (steps taken) and "rng/0".."rng/5" (random, randk, blockwise draws).
#pragma once

#include <vector>

#include "optim/galore_projector.h"
#include "optim/optimizer.h"
#include "runtime/host_staging.h"

namespace lintrain {

struct AdamStep;  // runtime/ops.h

class Frugal : public Optimizer {
 public:
  // Throws ConfigError for an unknown proj_type/state_free, density outside
  // (0, 1], update_gap < 1, or a non-2-D tensor with a projecting proj_type.
  Frugal(const Context& ctx, const OptimConfig& cfg, const ParamGroup& group, const ParamTable& table, uint64_t seed);
  void step(FlatBuffer& params, const FlatBuffer& grads, double lr) override;
  const char* name() const override { return "frugal"; }
  size_t state_bytes() const override;
  std::vector<StateTensor> state_tensors() override;
  std::vector<StateWord> state_words() override;
  int64_t step_count() const override { return static_cast<int64_t>(t_); }

  // The state table of `group` (see the top of this file); allocates nothing.
  static ParamTable state_layout(const FrugalConfig& cfg, const ParamGroup& group, const ParamTable& table);

  // Chooses a new subspace for every tensor of the group from `grads` (svd)
  // or the RNG, and zeroes the moments. step() calls it at steps 1,
  // 1 + update_gap, ...; it is public so a test can look at the state between
  // a change and the first update in the new subspace.
  void choose_subspace(const FlatBuffer& grads);

  // The split step() makes of the gradient g (m, n) of the group's k-th tensor:
  //   coords  R = coords(G), (m, r) or (r, n)   (svd, random, randk)
  //   free    G - lift(R), (m, n)
  // For blockwise: a state-full tensor has coords = G and free = 0, a
  // state-free one free = G (coords untouched).
  void split_gradient(size_t k, const float* g, float* coords, float* free) const;
  // lift(R) into full (m, n) for the group's k-th tensor: P(G) = lift(coords(G)).
  void lift(size_t k, const float* coords, float* full) const;

 private:
  enum class ProjType { Svd, Random, RandK, Blockwise };
  enum class StateFree { SignSgd, Sgd, None };
  // One tensor of the group.
  struct Slot {
    int view = 0;          // into table_
    int64_t m = 0, n = 0;  // the weight as a matrix (blockwise: numel, 1)
    int64_t r = 0;         // subspace dimension (svd, random, randk)
    bool right = true;     // m >= n: R = G P^T (m, r); else R = P^T G (r, n)
    int basis = -1;        // state views: projector or indices (svd, random, randk)
    int exp_avg = -1, exp_avg_sq = -1;
  };
  static ParamTable layout(const FrugalConfig& cfg, const ParamGroup& group, const ParamTable& table,
                           std::vector<Slot>* slots);
  // The state-free step on d (n): sign-SGD, SGD or decay alone.
  void step_state_free(float* p, const float* d, int64_t n, float decay, float lr_free);
  void step_projected(const Slot& s, size_t k, float* p, const float* g, const AdamStep& adam, float lr_free);
  void step_blockwise(FlatBuffer& params, const FlatBuffer& grads, const AdamStep& adam, float lr_free);

  Context ctx_;
  const ParamTable& table_;
  ParamGroup group_;
  ProjType proj_;
  StateFree free_;
  double density_, inactive_lr_scale_, b1_, b2_, eps_;
  uint64_t update_gap_;
  std::vector<Slot> slots_;
  ParamTable state_table_;
  FlatBuffer state_;
  int active_ = -1;  // blockwise state views
  int pool_m_ = -1, pool_v_ = -1;
  RngWords rng_;
  uint64_t t_ = 0;
  // Scratch (not state), on the device: coordinates and one full-size
  // matrix, the largest of the group.
  Tensor coords_, full_;
  // The host side of the subspace choice (RNG draws, SVD, QR) and of
  // reading the blockwise flags: copies only on a GPU context.
  HostStaging basis_host_, grad_host_;
  mutable HostStaging active_host_;
  bool is_active(size_t k) const;
  // svd: the top-r singular vectors on the smaller side, exactly GaLore's
  // projector in GaLore's layout (exact SVD; scratch reserved per shape).
  GaloreProjector svd_{GaloreConfig{}};
};

extern const UpdateRuleInfo kFrugalRule;

}  // namespace lintrain
