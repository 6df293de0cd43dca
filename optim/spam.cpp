#include "optim/spam.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "runtime/error.h"
#include "runtime/ops.h"

namespace lintrain {

namespace {

constexpr int kMaskBits = kSpamMaskBits;  // mask bits per f32 word: integers below 2^16 are exact

bool is_sparse(const SpamConfig& cfg, const TensorView& v) { return cfg.density < 1.0 && v.shape.size() == 2; }

int64_t mask_words(int64_t numel) { return (numel + kMaskBits - 1) / kMaskBits; }

}  // namespace

int64_t Spam::sparse_capacity(double density, int64_t numel) {
  // floor as the official code; at least one entry so the state view is not empty.
  return std::max<int64_t>(1, std::min<int64_t>(numel, static_cast<int64_t>(density * static_cast<double>(numel))));
}

ParamTable Spam::state_layout(const OptimConfig& cfg, const ParamGroup& group, const ParamTable& table) {
  ParamTable st;
  for (int i : group.views) {
    const TensorView& v = table.view(i);
    if (is_sparse(cfg.spam, v) && cfg.spam.density * static_cast<double>(v.numel) < 1.0) {
      // sparse_capacity would clamp it to one entry without a word.
      const double min_density = 1.0 / static_cast<double>(v.numel);
      const double scale = std::pow(10.0, 2 - static_cast<int>(std::floor(std::log10(min_density))));
      throw ConfigError(str_cat("optim.spam.density ", cfg.spam.density, " keeps less than one of the ", v.numel,
                                " entries of '", v.name, "' of shape ", shape_str(v.shape),
                                ", so it would run as one entry; use optim.spam.density >= ",
                                std::ceil(min_density * scale) / scale, " (or 1 for dense moments)"));
    }
    if (is_sparse(cfg.spam, v)) {
      const int64_t k = sparse_capacity(cfg.spam.density, v.numel);
      st.add(v.name + "/exp_avg", {k});
      st.add(v.name + "/exp_avg_sq", {k});
      st.add(v.name + "/mask", {mask_words(v.numel)});
    } else {
      st.add(v.name + "/exp_avg", v.shape);
      st.add(v.name + "/exp_avg_sq", v.shape);
    }
  }
  return st;
}

double Spam::warmup_scale(const SpamConfig& cfg, uint64_t t) {
  const uint64_t d = static_cast<uint64_t>(cfg.reset_interval);
  if (d == 0 || t < d) return 1.0;  // no reset yet
  const uint64_t j = t % d;         // steps since the last reset
  if (j >= static_cast<uint64_t>(cfg.warmup)) return 1.0;
  return 1.0 - 0.99 * (1.0 + std::cos(M_PI * static_cast<double>(j) / (cfg.warmup + 1.0))) / 2.0;
}

bool Spam::clips_at(const SpamConfig& cfg, uint64_t t) {
  if (cfg.threshold == 0.0) return false;
  const uint64_t d = static_cast<uint64_t>(cfg.reset_interval);
  const uint64_t phase = d == 0 ? t : t % d;
  return phase >= static_cast<uint64_t>(cfg.clip_delay);
}

Spam::Spam(const Context& ctx, const OptimConfig& cfg, const ParamGroup& group, const ParamTable& table,
           uint64_t seed)
    : ctx_(ctx),
      table_(table),
      group_(group),
      cfg_(cfg.spam),
      state_table_(state_layout(cfg, group, table)),
      state_(state_table_, ctx.device),
      rng_(seed) {
  int s = 0;
  for (int i : group.views) {
    Slot slot;
    slot.param = i;
    slot.exp_avg = s++;
    slot.exp_avg_sq = s++;
    slot.capacity = state_table_.view(slot.exp_avg).numel;
    if (is_sparse(cfg_, table.view(i))) {
      slot.mask = s++;
      sparse_ = true;
    }
    slots_.push_back(slot);
  }
  chunk_starts_.resize(slots_.size());
  for (size_t k = 0; k < slots_.size(); ++k)
    if (slots_[k].mask >= 0)
      chunk_starts_[k] =
          Tensor::zeros({spam_mask_chunks(state_table_.view(slots_[k].mask).numel) + 1}, DType::I64, ctx.device);
  Rng rng = rng_.load();
  for (const Slot& slot : slots_)
    if (slot.mask >= 0) draw_mask(slot, rng);
  rng_.store(rng);
}

void Spam::step(FlatBuffer& params, const FlatBuffer& grads, double lr) {
  // Every mask is checked before anything changes (it may come from a
  // checkpoint), so the update never indexes past the moments.
  for (size_t s = 0; s < slots_.size(); ++s) {
    if (slots_[s].mask < 0) continue;
    const TensorView& view = table_.view(slots_[s].param);
    const TensorView& mask = state_table_.view(slots_[s].mask);
    int64_t* chunk_start = static_cast<int64_t*>(chunk_starts_[s].raw());
    const SpamMaskCount count = spam_mask_offsets(ctx_, chunk_start, state_.at(mask), mask.numel, view.numel);
    LT_CHECK(count.invalid_words == 0 && count.entries == slots_[s].capacity, "[spam] the momentum mask of '",
             view.name, "' holds ", count.entries, " entries in valid words (", count.invalid_words,
             " invalid words), expected ", slots_[s].capacity,
             ": the optimizer state is damaged or was written with another optim.spam.density");
  }
  ++t_;
  const double t = static_cast<double>(t_);
  const double b1 = cfg_.betas.at(0), b2 = cfg_.betas.at(1);
  const double step_size = lr * warmup_scale(cfg_, t_) * std::sqrt(1.0 - std::pow(b2, t)) / (1.0 - std::pow(b1, t));
  SpamStep c;
  c.b1 = static_cast<float>(b1);
  c.b2 = static_cast<float>(b2);
  c.c1 = static_cast<float>(1.0 - b1);
  c.c2 = static_cast<float>(1.0 - b2);
  c.eps = static_cast<float>(cfg_.eps);
  c.theta = static_cast<float>(cfg_.threshold);
  c.step = static_cast<float>(step_size);
  c.decay = static_cast<float>(1.0 - lr * group_.weight_decay);
  c.clip = clips_at(cfg_, t_);
  for (size_t s = 0; s < slots_.size(); ++s) {
    const Slot& slot = slots_[s];
    const TensorView& view = table_.view(slot.param);
    float* p = params.at(view);
    const float* g = grads.at(view);
    float* m = state_.at(state_table_.view(slot.exp_avg));
    float* v = state_.at(state_table_.view(slot.exp_avg_sq));
    if (slot.mask >= 0) {
      const TensorView& mask = state_table_.view(slot.mask);
      spam_sparse_update(ctx_, p, m, v, g, state_.at(mask), mask.numel,
                         static_cast<const int64_t*>(chunk_starts_[s].raw()), c);
    } else {
      spam_update(ctx_, p, m, v, g, view.numel, c);
    }
  }
  // The official code redraws the masks and restarts the warm-up at the end
  // of step D - 1 but zeroes the moments at the start of step D; zeroing them
  // here too is the same update, and leaves a checkpoint taken in between
  // already reset.
  const uint64_t d = static_cast<uint64_t>(cfg_.reset_interval);
  if (d > 0 && (t_ + 1) % d == 0) reset();
}

// The mask draws are host-only: on a CUDA context each new mask is one
// explicit copy to the device.
void Spam::reset() {
  Rng rng = rng_.load();
  for (const Slot& slot : slots_) {
    const TensorView& m = state_table_.view(slot.exp_avg);
    const TensorView& v = state_table_.view(slot.exp_avg_sq);
    zero_floats(ctx_, state_.at(m), m.numel);
    zero_floats(ctx_, state_.at(v), v.numel);
    if (slot.mask >= 0) draw_mask(slot, rng);
  }
  rng_.store(rng);
}

void Spam::draw_mask(const Slot& slot, Rng& rng) {
  // Floyd's algorithm: a uniformly random K-subset of [0, n) in K draws, with
  // no n-sized scratch beyond the bits themselves.
  const int64_t n = table_.view(slot.param).numel;
  const TensorView& mask_view = state_table_.view(slot.mask);
  std::vector<uint16_t> bits(static_cast<size_t>(mask_view.numel), 0);
  auto test_and_set = [&](int64_t i) {
    uint16_t& word = bits[static_cast<size_t>(i / kMaskBits)];
    const uint16_t bit = static_cast<uint16_t>(1u << (i % kMaskBits));
    const bool was = (word & bit) != 0;
    word = static_cast<uint16_t>(word | bit);
    return was;
  };
  for (int64_t j = n - slot.capacity; j < n; ++j) {
    const int64_t r = static_cast<int64_t>(rng.below(static_cast<uint64_t>(j) + 1));
    if (test_and_set(r)) test_and_set(j);
  }
  float* mask = mask_host_.write(ctx_, state_.at(mask_view), mask_view.numel);
  for (int64_t w = 0; w < mask_view.numel; ++w) mask[w] = static_cast<float>(bits[static_cast<size_t>(w)]);
  mask_host_.publish(ctx_, state_.at(mask_view), mask_view.numel);
}

size_t Spam::state_bytes() const { return static_cast<size_t>(state_table_.buffer_numel()) * sizeof(float); }

std::vector<StateTensor> Spam::state_tensors() { return state_tensors_of(state_table_, state_); }

std::vector<StateWord> Spam::state_words() {
  std::vector<StateWord> out = {{"step", &t_}};
  if (sparse_) rng_.expose("rng", out);
  return out;
}

const UpdateRuleInfo kSpamRule = {
    "spam",
    [](const Context& ctx, const OptimConfig& cfg, const ParamGroup& group, const ParamTable& table,
       uint64_t seed) -> std::unique_ptr<Optimizer> { return std::make_unique<Spam>(ctx, cfg, group, table, seed); },
    [](const OptimConfig& cfg, const ParamGroup& group, const ParamTable& table) {
      return Spam::state_layout(cfg, group, table).buffer_numel();
    },
};

}  // namespace lintrain
