// SPAM (Huang et al., ICLR 2025, "SPAM: Spike-Aware Adam with Momentum Reset
// for Stable LLM Training") on one parameter group: Adam whose moments are
// zeroed every reset_interval steps, whose update is warmed up again after each
// reset, and whose gradient spikes are clipped against the second moment.
// The step indexing follows the authors' SPAM.py (TianjinHuang/SPAM-Optimizer).
//
// For step t (1-based; the bias correction counts every step, resets included)
// and each element, with D = reset_interval, W = warmup, theta = threshold:
//   phase(t) = t mod D  (t when D = 0: no resets)
//   spike clip, when theta > 0 and phase(t) >= clip_delay:
//     g = sign(g) sqrt(theta v)  where g^2 > theta v   (v before this step's update)
//   m = b1 m + (1 - b1) g,   v = b2 v + (1 - b2) g^2
//   p = p - lr * s(t) * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)
//   p = p * (1 - lr * wd)                     (decoupled decay, AFTER the update)
// and after step t, when (t + 1) mod D = 0: both moments are set to zero (and
// sparse masks redrawn), so steps D, 2D, ... start from zero moments.
// The warm-up factor s(t) is 1 before the first reset; from a reset on, with
// j = t mod D the steps since it (j = 0 at the first step after it),
//   s = 1 - 0.99 (1 + cos(pi j / (W + 1))) / 2  for j < W  (0.01 at j = 0),  1 for j >= W
// which is the official CosineDecay(0.99, W) over W + 1 steps, cut to 1 at W.
// By phase(t), the first clip_delay - 1 steps of training and the first clip_delay steps
// after each reset (the reset step included) are never clipped. (With
// clip_delay 0 those steps clip against v = 0, which zeroes their gradients:
// the official behaviour, kept.)
//
// Sparse momentum (density < 1): each 2-D tensor keeps moments for only
// K = max(1, floor(density * numel)) entries, a uniformly random set drawn
// from the rule's seeded RNG at construction and redrawn at every reset. An
// entry outside the set gets no update at all (no Adam step, no decay) until a
// redraw picks it, as in the official code. Entries in the set are decayed
// after their update like dense ones; the official code means to do the same
// but writes the decay into a copy (p.data[mask].add_), so there it is lost.
// The official redraw takes each entry with probability density (a count
// that varies); here every draw has exactly K entries, like its first draw,
// so the state has a fixed size. 1-D tensors stay dense.
//
// State, one flat buffer laid out by state_layout (group order):
//   "<param>/exp_avg", "<param>/exp_avg_sq"   the param's shape, or [K] if sparse
//   "<param>/mask"      sparse only, [ceil(numel / 16)]: entry i is in the set
//                       when bit (i mod 16) of float word i / 16 (an integer in
//                       [0, 65535], exact in f32) is set; the moments of the set
//                       are stored in increasing entry order.
// State words: "step", and for sparse groups "rng/0".."rng/5".
#pragma once

#include "optim/optimizer.h"
#include "runtime/host_staging.h"

namespace lintrain {

class Spam : public Optimizer {
 public:
  Spam(const Context& ctx, const OptimConfig& cfg, const ParamGroup& group, const ParamTable& table, uint64_t seed);
  void step(FlatBuffer& params, const FlatBuffer& grads, double lr) override;
  const char* name() const override { return "spam"; }
  size_t state_bytes() const override;
  std::vector<StateTensor> state_tensors() override;
  std::vector<StateWord> state_words() override;
  int64_t step_count() const override { return static_cast<int64_t>(t_); }

  // The state table (see above); sparse tensors depend on cfg.spam.density.
  static ParamTable state_layout(const OptimConfig& cfg, const ParamGroup& group, const ParamTable& table);
  // Moments a sparse tensor of `numel` entries keeps.
  static int64_t sparse_capacity(double density, int64_t numel);
  // The warm-up factor s(t) of step t (1-based).
  static double warmup_scale(const SpamConfig& cfg, uint64_t t);
  // Whether step t (1-based) clips gradient spikes.
  static bool clips_at(const SpamConfig& cfg, uint64_t t);

 private:
  struct Slot {
    int param;         // index into the param table
    int exp_avg;       // index into the state table
    int exp_avg_sq;
    int mask = -1;     // -1 for a dense tensor
    int64_t capacity;  // moments held
  };
  void reset();
  void draw_mask(const Slot& slot, Rng& rng);

  Context ctx_;
  const ParamTable& table_;
  ParamGroup group_;
  SpamConfig cfg_;
  ParamTable state_table_;
  FlatBuffer state_;
  std::vector<Slot> slots_;
  bool sparse_ = false;
  RngWords rng_;
  uint64_t t_ = 0;
  std::vector<Tensor> chunk_starts_;  // per slot (I64, on the device): the sparse update's chunk offsets (spam_mask_offsets)
  HostStaging mask_host_;             // the mask draws, made on the host
};

extern const UpdateRuleInfo kSpamRule;

}  // namespace lintrain
