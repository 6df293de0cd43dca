#include "optim/galore.h"

#include <algorithm>
#include <cmath>

#include "runtime/error.h"
#include "runtime/ops.h"

namespace lintrain {

namespace {

void check_matrix(const ParamGroup& group, const TensorView& v) {
  if (v.shape.size() == 2) return;
  throw ConfigError(str_cat("optim: tensor '", v.name, "' with shape ", shape_str(v.shape), " is in group '",
                            group.name, "' of optimizer galore, but GaLore projects matrices (2-D tensors) only; "
                            "add `ndim: 2` to the optim.groups rule that sends it to galore so it falls to a "
                            "later rule (e.g. adamw)"));
}

}  // namespace

ParamTable Galore::state_layout(const OptimConfig& cfg, const ParamGroup& group, const ParamTable& table) {
  ParamTable st;
  for (int i : group.views) {
    const TensorView& v = table.view(i);
    check_matrix(group, v);
    const int64_t m = v.shape[0], n = v.shape[1];
    // GaLore keeps a projector (s, r) and two moments (r, L) on a matrix of
    // sides s <= L, where AdamW keeps two (s, L) moments: r (s + 2L) values
    // against 2 s L. A rank past that break-even (a rank above the smaller
    // side included) costs more than AdamW, so it is no saving at all.
    const int64_t s = std::min(m, n), l = std::max(m, n);
    const int64_t rank = cfg.galore.rank;
    const int64_t max_rank = 2 * s * l / (s + 2 * l);
    if (rank > max_rank)
      throw ConfigError(str_cat("optim.galore.rank ", rank, " on '", v.name, "' of shape ", shape_str(v.shape),
                                " keeps ", std::min(rank, s) * (s + 2 * l), " values of optimizer state against AdamW's ",
                                2 * s * l, ", so GaLore would cost more memory than AdamW; use optim.galore.rank <= ",
                                max_rank, " (a quarter of the smaller side, ", std::max<int64_t>(1, s / 4),
                                ", is usual), or send that tensor to adamw with an optim.groups rule"));
    const int64_t r = galore_rank(cfg.galore, m, n);
    const bool left = galore_projects_left(m, n);
    const Shape projector = left ? Shape{m, r} : Shape{r, n};
    const Shape lowrank = left ? Shape{r, n} : Shape{m, r};
    st.add(v.name + "/projector", projector);
    st.add(v.name + "/exp_avg", lowrank);
    st.add(v.name + "/exp_avg_sq", lowrank);
  }
  return st;
}

Galore::Galore(const Context& ctx, const OptimConfig& cfg, const ParamGroup& group, const ParamTable& table,
               uint64_t seed)
    : ctx_(ctx),
      table_(table),
      group_(group),
      b1_(cfg.galore.betas.at(0)),
      b2_(cfg.galore.betas.at(1)),
      eps_(cfg.galore.eps),
      scale_(cfg.galore.scale),
      gap_(static_cast<uint64_t>(cfg.galore.update_proj_gap)),
      randomized_(cfg.galore.svd == "randomized"),
      state_table_(state_layout(cfg, group, table)),
      state_(state_table_, ctx.device),
      rng_(seed),
      projector_(cfg.galore) {
  LT_CHECK(cfg.galore.rank >= 1 && cfg.galore.update_proj_gap >= 1, "[galore] rank (", cfg.galore.rank,
           ") and update_proj_gap (", cfg.galore.update_proj_gap, ") must be >= 1");
  int64_t lowrank_max = 0;
  for (size_t k = 0; k < group.views.size(); ++k) {
    const TensorView& v = table.view(group.views[k]);
    Matrix w;
    w.param = group.views[k];
    w.m = static_cast<int>(v.shape[0]);
    w.n = static_cast<int>(v.shape[1]);
    w.r = galore_rank(cfg.galore, w.m, w.n);
    w.left = galore_projects_left(w.m, w.n);
    w.projector = static_cast<int>(3 * k);
    w.exp_avg = static_cast<int>(3 * k + 1);
    w.exp_avg_sq = static_cast<int>(3 * k + 2);
    matrices_.push_back(w);
    lowrank_max = std::max(lowrank_max, int64_t{w.r} * std::max(w.m, w.n));
    projector_.reserve(w.m, w.n, w.r);
  }
  lowrank_ = Tensor::zeros({lowrank_max}, DType::F32, ctx.device);
}

void Galore::step(FlatBuffer& params, const FlatBuffer& grads, double lr) {
  // Official: project(grad, state["step"]) refreshes when step % gap == 0,
  // before the step counter is incremented.
  const bool refresh = t_ % gap_ == 0;
  ++t_;
  const double bc1 = 1.0 - std::pow(b1_, static_cast<double>(t_));
  const double bc2 = 1.0 - std::pow(b2_, static_cast<double>(t_));
  const float update_scale = static_cast<float>(-(lr * std::sqrt(bc2) / bc1) * scale_);
  const float decay = static_cast<float>(1.0 - lr * group_.weight_decay);
  // The bare direction N = m / (sqrt(v) + eps): the bias correction is in update_scale.
  AdamStep s;
  s.b1 = static_cast<float>(b1_);
  s.b2 = static_cast<float>(b2_);
  s.c1 = 1.0f - s.b1;  // rounded in f32, as the official code (AdamW rounds from double)
  s.c2 = 1.0f - s.b2;
  s.eps = static_cast<float>(eps_);

  Rng rng = rng_.load();
  for (const Matrix& w : matrices_) {
    const TensorView& view = table_.view(w.param);
    float* W = params.at(view);                 // (m, n)
    const float* G = grads.at(view);            // (m, n)
    float* P = state_.at(state_table_.view(w.projector));
    float* M = state_.at(state_table_.view(w.exp_avg));
    float* V = state_.at(state_table_.view(w.exp_avg_sq));
    float* R = lowrank_.data<float>();          // (r, n) if left else (m, r)
    const int m = w.m, n = w.n, r = w.r;

    // Host-only (LAPACK): on a CUDA context G and P are explicit copies.
    if (refresh) {
      const int64_t np = state_table_.view(w.projector).numel;
      float* P_host = projector_host_.write(ctx_, P, np);
      projector_.compute(grad_host_.read(ctx_, G, view.numel), m, n, r, P_host, rng);
      projector_host_.publish(ctx_, P, np);
    }
    if (w.left) matmul(ctx_, true, false, r, n, m, 1.0f, P, r, G, n, 0.0f, R, n);  // R = P^T G
    else matmul(ctx_, false, true, m, r, n, 1.0f, G, n, P, n, 0.0f, R, r);         // R = G P^T

    const int64_t lowrank = int64_t{r} * (w.left ? n : m);
    adam_update(ctx_, R, M, V, R, lowrank, s, AdamTarget::Direction);  // N, in place of R

    // W += -step_size * scale * (P N or N P), accumulated by the GEMM itself.
    if (w.left) matmul(ctx_, false, false, m, n, r, update_scale, P, r, R, n, 1.0f, W, n);
    else matmul(ctx_, false, false, m, n, r, update_scale, R, r, P, n, 1.0f, W, n);
    if (group_.weight_decay != 0.0) scale(ctx_, W, view.numel, decay);
  }
  if (refresh && randomized_) rng_.store(rng);
}

size_t Galore::state_bytes() const { return static_cast<size_t>(state_table_.buffer_numel()) * sizeof(float); }

std::vector<StateTensor> Galore::state_tensors() { return state_tensors_of(state_table_, state_); }

std::vector<StateWord> Galore::state_words() {
  std::vector<StateWord> out = {{"step", &t_}};
  if (randomized_) rng_.expose("rng", out);
  return out;
}

const UpdateRuleInfo kGaloreRule = {
    "galore",
    [](const Context& ctx, const OptimConfig& cfg, const ParamGroup& group, const ParamTable& table,
       uint64_t seed) -> std::unique_ptr<Optimizer> { return std::make_unique<Galore>(ctx, cfg, group, table, seed); },
    [](const OptimConfig& cfg, const ParamGroup& group, const ParamTable& table) {
      return Galore::state_layout(cfg, group, table).buffer_numel();
    },
};

}  // namespace lintrain
