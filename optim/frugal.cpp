#include "optim/frugal.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "optim/frugal_subspace.h"
#include "runtime/error.h"
#include "runtime/ops.h"

namespace lintrain {

// ---- layout ---------------------------------------------------------------------------

namespace {

// `x` rounded up at 3 significant digits: a density printed as advice must
// itself pass the check it is advice for.
double round_up_3(double x) {
  const double scale = std::pow(10.0, 2 - static_cast<int>(std::floor(std::log10(x))));
  return std::ceil(x * scale) / scale;
}

// A density too small to select one element would be clamped to one (rank 1,
// or the first tensor) without a word: refused, naming the effective value.
void check_density_selects(const FrugalConfig& cfg, double selected, double min_density, const std::string& what,
                           const std::string& effective) {
  if (selected >= 1.0) return;
  throw ConfigError(str_cat("optim.frugal.density ", cfg.density, " selects less than one ", what,
                            ", so it would run as ", effective, "; use optim.frugal.density >= ",
                            round_up_3(min_density), " (0.25 is usual)"));
}

}  // namespace

ParamTable Frugal::state_layout(const FrugalConfig& cfg, const ParamGroup& group, const ParamTable& table) {
  return layout(cfg, group, table, nullptr);
}

ParamTable Frugal::layout(const FrugalConfig& cfg, const ParamGroup& group, const ParamTable& table,
                          std::vector<Slot>* slots) {
  const std::string& pt = cfg.proj_type;
  if (pt != "svd" && pt != "random" && pt != "randk" && pt != "blockwise")
    throw ConfigError(str_cat("optim.frugal.proj_type: expected one of svd, random, randk, blockwise, got '", pt, "'"));
  const std::string& sf = cfg.state_free;
  if (sf != "signsgd" && sf != "sgd" && sf != "none")
    throw ConfigError(str_cat("optim.frugal.state_free: expected one of signsgd, sgd, none, got '", sf, "'"));
  if (!(cfg.density > 0.0 && cfg.density <= 1.0))
    throw ConfigError(str_cat("optim.frugal.density: expected a value in (0, 1], got ", cfg.density));
  if (cfg.update_gap < 1)
    throw ConfigError(str_cat("optim.frugal.update_gap: expected at least 1, got ", cfg.update_gap));

  ParamTable st;
  std::vector<Slot> out;
  if (pt == "blockwise") {
    int64_t total = 0, largest = 0;
    for (int i : group.views) {
      const TensorView& v = table.view(i);
      Slot s;
      s.view = i;
      s.m = v.numel;
      s.n = 1;
      out.push_back(s);
      total += v.numel;
      largest = std::max(largest, v.numel);
    }
    if (!out.empty())
      check_density_selects(cfg, cfg.density * static_cast<double>(total), 1.0 / static_cast<double>(total),
                            str_cat("of the ", total, " elements of the group's tensors"),
                            str_cat("its first tensor, '", table.view(out[0].view).name, "', alone"));
    if (!out.empty()) {
      // The walk stops once the count reaches density * total, so before the last
      // tensor it was below that: at most floor(density * total), plus the last.
      const int64_t capacity = static_cast<int64_t>(std::floor(cfg.density * static_cast<double>(total))) + largest;
      st.add("active", {static_cast<int64_t>(out.size())});
      st.add("exp_avg", {capacity});
      st.add("exp_avg_sq", {capacity});
    }
  } else {
    for (int i : group.views) {
      const TensorView& v = table.view(i);
      if (v.shape.size() != 2)
        throw ConfigError(str_cat("optim.frugal: tensor '", v.name, "' has shape ", shape_str(v.shape),
                                  ", but proj_type '", pt, "' projects 2-D matrices only; add `ndim: 2` to the ",
                                  "optim.groups rule that gives it frugal (or use proj_type blockwise)"));
      Slot s;
      s.view = i;
      s.m = v.shape[0];
      s.n = v.shape[1];
      s.right = s.m >= s.n;
      const int64_t side = std::min(s.m, s.n);
      check_density_selects(cfg, std::nearbyint(cfg.density * static_cast<double>(side)),
                            0.5 / static_cast<double>(side),
                            str_cat("row or column of '", v.name, "' of shape ", shape_str(v.shape),
                                    " (density x ", side, " rounds to 0)"),
                            "rank 1");
      // Half to even, like the official code's Python round().
      s.r = std::max<int64_t>(1, static_cast<int64_t>(std::nearbyint(cfg.density * static_cast<double>(side))));
      s.r = std::min(s.r, side);
      // randk keeps indices as floats: exact below 2^24.
      if (pt == "randk" && side >= (int64_t{1} << 24))
        throw ConfigError(str_cat("optim.frugal: ", v.name, " ", shape_str(v.shape), " is too large for randk"));
      if (pt == "randk") s.basis = st.add(v.name + "/indices", {s.r});
      else s.basis = st.add(v.name + "/projector", s.right ? Shape{s.r, s.n} : Shape{s.m, s.r});
      const Shape coords = s.right ? Shape{s.m, s.r} : Shape{s.r, s.n};
      s.exp_avg = st.add(v.name + "/exp_avg", coords);
      s.exp_avg_sq = st.add(v.name + "/exp_avg_sq", coords);
      out.push_back(s);
    }
  }
  if (slots) *slots = std::move(out);
  return st;
}

// ---- construction and state --------------------------------------------------------

Frugal::Frugal(const Context& ctx, const OptimConfig& cfg, const ParamGroup& group, const ParamTable& table,
               uint64_t seed)
    : ctx_(ctx),
      table_(table),
      group_(group),
      proj_(cfg.frugal.proj_type == "svd"      ? ProjType::Svd
            : cfg.frugal.proj_type == "random" ? ProjType::Random
            : cfg.frugal.proj_type == "randk"  ? ProjType::RandK
                                               : ProjType::Blockwise),
      free_(cfg.frugal.state_free == "signsgd" ? StateFree::SignSgd
            : cfg.frugal.state_free == "sgd"   ? StateFree::Sgd
                                               : StateFree::None),
      density_(cfg.frugal.density),
      inactive_lr_scale_(cfg.frugal.inactive_lr_scale),
      b1_(cfg.frugal.betas.at(0)),
      b2_(cfg.frugal.betas.at(1)),
      eps_(cfg.frugal.eps),
      update_gap_(static_cast<uint64_t>(std::max(1, cfg.frugal.update_gap))),
      state_table_(layout(cfg.frugal, group, table, &slots_)),  // validates cfg.frugal
      state_(state_table_, ctx.device),
      rng_(seed) {
  if (proj_ == ProjType::Blockwise) {
    active_ = state_table_.find("active");
    pool_m_ = state_table_.find("exp_avg");
    pool_v_ = state_table_.find("exp_avg_sq");
    return;
  }
  int64_t coords = 0, full = 0;
  for (const Slot& s : slots_) {
    coords = std::max(coords, s.right ? s.m * s.r : s.r * s.n);
    full = std::max(full, s.m * s.n);
  }
  coords_ = Tensor::zeros({coords}, DType::F32, ctx.device);
  full_ = Tensor::zeros({full}, DType::F32, ctx.device);
  if (proj_ == ProjType::Svd)
    for (const Slot& s : slots_) svd_.reserve(static_cast<int>(s.m), static_cast<int>(s.n), static_cast<int>(s.r));
}

size_t Frugal::state_bytes() const { return static_cast<size_t>(state_table_.buffer_numel()) * sizeof(float); }

std::vector<StateTensor> Frugal::state_tensors() { return state_tensors_of(state_table_, state_); }

std::vector<StateWord> Frugal::state_words() {
  std::vector<StateWord> out = {{"step", &t_}};
  rng_.expose("rng", out);
  return out;
}

// ---- subspaces --------------------------------------------------------------------------

bool Frugal::is_active(size_t k) const {
  return active_host_.read(ctx_, state_.at(state_table_.view(active_)) + k, 1)[0] != 0.0f;
}

// Host-only (the RNG draws, LAPACK's SVD and QR): on a CUDA context the
// gradient and the new basis are explicit copies.
void Frugal::choose_subspace(const FlatBuffer& grads) {
  namespace fs = frugal_subspace;
  Rng rng = rng_.load();
  if (proj_ == ProjType::Blockwise) {
    if (slots_.empty()) return;
    const int64_t flags = static_cast<int64_t>(slots_.size());
    float* active_dev = state_.at(state_table_.view(active_));
    float* active = basis_host_.write(ctx_, active_dev, flags);
    std::fill(active, active + slots_.size(), 0.0f);
    int64_t total = 0;
    for (const Slot& s : slots_) total += s.m;
    const double budget = density_ * static_cast<double>(total);
    int64_t taken = 0;
    for (int k : fs::random_permutation(rng, static_cast<int>(slots_.size()))) {
      if (static_cast<double>(taken) >= budget) break;
      active[k] = 1.0f;
      taken += slots_[static_cast<size_t>(k)].m;
    }
    basis_host_.publish(ctx_, active_dev, flags);
    for (int v : {pool_m_, pool_v_}) {
      const TensorView& view = state_table_.view(v);
      zero_floats(ctx_, state_.at(view), view.numel);
    }
    rng_.store(rng);
    return;
  }
  for (const Slot& s : slots_) {
    const TensorView& v = table_.view(s.view);
    const TensorView& basis_view = state_table_.view(s.basis);
    float* basis_dev = state_.at(basis_view);
    float* basis = basis_host_.write(ctx_, basis_dev, basis_view.numel);
    const int m = static_cast<int>(s.m), n = static_cast<int>(s.n), r = static_cast<int>(s.r);
    if (proj_ == ProjType::RandK) {
      const std::vector<int> idx = fs::random_sorted_subset(rng, s.right ? n : m, r);
      for (int j = 0; j < r; ++j) basis[j] = static_cast<float>(idx[static_cast<size_t>(j)]);
    } else if (proj_ == ProjType::Svd) {  // P (r, n) or (m, r), GaLore's layout; draws nothing from rng
      svd_.compute(grad_host_.read(ctx_, grads.at(v), v.numel), m, n, r, basis, rng);
    } else if (s.right) {  // P (r, n): the basis vectors are its rows
      fs::random_orthonormal_rows(rng, n, r, basis);
    } else {  // P (m, r): the basis vectors are its columns
      // (r, m) <= (m, n) since r <= m < n: full_ itself on the CPU, host scratch on a GPU
      float* rows = grad_host_.write(ctx_, full_.data<float>(), int64_t{r} * m);
      fs::random_orthonormal_rows(rng, m, r, rows);
      for (int i = 0; i < m; ++i)
        for (int j = 0; j < r; ++j) basis[static_cast<size_t>(i) * r + j] = rows[static_cast<size_t>(j) * m + i];
    }
    basis_host_.publish(ctx_, basis_dev, basis_view.numel);
    for (int w : {s.exp_avg, s.exp_avg_sq}) {
      const TensorView& view = state_table_.view(w);
      zero_floats(ctx_, state_.at(view), view.numel);
    }
  }
  rng_.store(rng);
}

void Frugal::split_gradient(size_t k, const float* g, float* coords, float* free) const {
  const Slot& s = slots_.at(k);
  if (proj_ == ProjType::Blockwise) {
    const bool active = is_active(k);
    if (active) copy_floats(ctx_, coords, g, s.m);
    if (free) {
      if (active) zero_floats(ctx_, free, s.m);
      else copy_floats(ctx_, free, g, s.m);
    }
    return;
  }
  const float* basis = state_.at(state_table_.view(s.basis));
  const int64_t m = s.m, n = s.n, r = s.r;
  if (proj_ == ProjType::RandK) {  // coords (m, r) = the chosen columns, or (r, n) = the chosen rows
    index_gather(ctx_, coords, g, basis, m, n, r, s.right ? IndexAxis::Columns : IndexAxis::Rows);
  } else if (s.right) {  // (m, r) = G (m, n) @ P^T (n, r)
    matmul(ctx_, false, true, static_cast<int>(m), static_cast<int>(r), static_cast<int>(n), 1.0f, g, static_cast<int>(n),
         basis, static_cast<int>(n), 0.0f, coords, static_cast<int>(r));
  } else {  // (r, n) = P^T (r, m) @ G (m, n)
    matmul(ctx_, true, false, static_cast<int>(r), static_cast<int>(n), static_cast<int>(m), 1.0f, basis, static_cast<int>(r),
         g, static_cast<int>(n), 0.0f, coords, static_cast<int>(n));
  }
  if (!free) return;
  lift(k, coords, free);
  subtract(ctx_, free, g, free, m * n);
}

void Frugal::lift(size_t k, const float* coords, float* full) const {
  const Slot& s = slots_.at(k);
  if (proj_ == ProjType::Blockwise) {
    if (is_active(k)) copy_floats(ctx_, full, coords, s.m);
    else zero_floats(ctx_, full, s.m);
    return;
  }
  const float* basis = state_.at(state_table_.view(s.basis));
  const int64_t m = s.m, n = s.n, r = s.r;
  if (proj_ == ProjType::RandK) {
    index_scatter(ctx_, full, coords, basis, m, n, r, s.right ? IndexAxis::Columns : IndexAxis::Rows);
  } else if (s.right) {  // (m, n) = R (m, r) @ P (r, n)
    matmul(ctx_, false, false, static_cast<int>(m), static_cast<int>(n), static_cast<int>(r), 1.0f, coords,
         static_cast<int>(r), basis, static_cast<int>(n), 0.0f, full, static_cast<int>(n));
  } else {  // (m, n) = P (m, r) @ R (r, n)
    matmul(ctx_, false, false, static_cast<int>(m), static_cast<int>(n), static_cast<int>(r), 1.0f, basis,
         static_cast<int>(r), coords, static_cast<int>(n), 0.0f, full, static_cast<int>(n));
  }
}

// ---- the update ---------------------------------------------------------------------------

void Frugal::step(FlatBuffer& params, const FlatBuffer& grads, double lr) {
  if (t_ % update_gap_ == 0) choose_subspace(grads);  // steps 1, 1 + gap, ...
  ++t_;
  // Bias correction counts the steps in this subspace (the official code
  // resets state["step"] with the moments).
  const double s = static_cast<double>((t_ - 1) % update_gap_ + 1);
  AdamStep adam;
  adam.b1 = static_cast<float>(b1_);
  adam.b2 = static_cast<float>(b2_);
  adam.c1 = 1.0f - adam.b1;  // rounded in f32 (AdamW rounds from double)
  adam.c2 = 1.0f - adam.b2;
  adam.eps = static_cast<float>(eps_);
  adam.step_size = static_cast<float>(lr / (1.0 - std::pow(b1_, s)));
  adam.inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(1.0 - std::pow(b2_, s)));
  adam.decay = static_cast<float>(1.0 - lr * group_.weight_decay);
  const float lr_free = static_cast<float>(lr * inactive_lr_scale_);
  if (proj_ == ProjType::Blockwise) {
    step_blockwise(params, grads, adam, lr_free);
    return;
  }
  for (size_t k = 0; k < slots_.size(); ++k) {
    const TensorView& v = table_.view(slots_[k].view);
    step_projected(slots_[k], k, params.at(v), grads.at(v), adam, lr_free);
  }
}

void Frugal::step_state_free(float* p, const float* d, int64_t n, float decay, float lr_free) {
  if (free_ == StateFree::SignSgd) sgd_update(ctx_, p, d, n, decay, lr_free, SgdDirection::Sign);
  else if (free_ == StateFree::Sgd) sgd_update(ctx_, p, d, n, decay, lr_free, SgdDirection::Plain);
  else scale(ctx_, p, n, decay);
}

void Frugal::step_projected(const Slot& s, size_t k, float* p, const float* g, const AdamStep& adam, float lr_free) {
  float* R = coords_.data<float>();
  float* F = full_.data<float>();
  const int64_t mn = s.m * s.n;
  split_gradient(k, g, R, free_ == StateFree::None ? nullptr : F);
  // Decay, then the state-free step on G - P(G).
  step_state_free(p, F, mn, adam.decay, lr_free);
  // AdamW on the coordinates; R becomes the step in coordinates, lifted back.
  float* M = state_.at(state_table_.view(s.exp_avg));
  float* V = state_.at(state_table_.view(s.exp_avg_sq));
  const int64_t nc = s.right ? s.m * s.r : s.r * s.n;
  adam_update(ctx_, R, M, V, R, nc, adam, AdamTarget::Direction);
  lift(k, R, F);
  subtract(ctx_, p, p, F, mn);
}

void Frugal::step_blockwise(FlatBuffer& params, const FlatBuffer& grads, const AdamStep& adam, float lr_free) {
  if (slots_.empty()) return;
  const float* active = active_host_.read(ctx_, state_.at(state_table_.view(active_)),
                                          static_cast<int64_t>(slots_.size()));
  float* M = state_.at(state_table_.view(pool_m_));
  float* V = state_.at(state_table_.view(pool_v_));
  const int64_t capacity = state_table_.view(pool_m_).numel;
  int64_t offset = 0;
  for (size_t k = 0; k < slots_.size(); ++k) {
    const TensorView& v = table_.view(slots_[k].view);
    float* p = params.at(v);
    const float* g = grads.at(v);
    const int64_t n = v.numel;
    if (active[k] != 0.0f) {
      LT_CHECK(offset + n <= capacity, "[frugal] blockwise state-full tensors exceed the moment capacity ", capacity,
               "; the 'active' state does not fit this group");
      adam_update(ctx_, p, M + offset, V + offset, g, n, adam, AdamTarget::Param);
      offset += n;
    } else {
      step_state_free(p, g, n, adam.decay, lr_free);
    }
  }
}

const UpdateRuleInfo kFrugalRule = {
    "frugal",
    [](const Context& ctx, const OptimConfig& cfg, const ParamGroup& group, const ParamTable& table,
       uint64_t seed) -> std::unique_ptr<Optimizer> { return std::make_unique<Frugal>(ctx, cfg, group, table, seed); },
    [](const OptimConfig& cfg, const ParamGroup& group, const ParamTable& table) {
      return Frugal::state_layout(cfg.frugal, group, table).buffer_numel();
    },
};

}  // namespace lintrain
