#include "runtime/data/mqar.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>

#include "runtime/error.h"

namespace lintrain {

namespace {

constexpr uint64_t kMqarKindId = 2;

// n distinct integers from [lo, hi) in uniformly random order (Floyd's
// subset sampling, then a Fisher-Yates shuffle): O(n), independent of hi - lo.
std::vector<int32_t> sample_distinct(Rng& rng, int32_t lo, int32_t hi, int n) {
  const uint64_t m = static_cast<uint64_t>(hi - lo);
  std::unordered_set<uint64_t> seen;
  std::vector<int32_t> out;
  out.reserve(static_cast<size_t>(n));
  for (uint64_t j = m - static_cast<uint64_t>(n); j < m; ++j) {
    uint64_t t = rng.below(j + 1);
    if (!seen.insert(t).second) {
      t = j;
      seen.insert(t);
    }
    out.push_back(lo + static_cast<int32_t>(t));
  }
  for (size_t i = out.size(); i > 1; --i) std::swap(out[i - 1], out[rng.below(i)]);
  return out;
}

// Uniform in the open interval (0, 1), so its log is finite.
double open_uniform(Rng& rng) { return (static_cast<double>(rng.next_u64() >> 11) + 0.5) * 0x1.0p-53; }

}  // namespace

MqarLoader::MqarLoader(int pairs, int queries, int vocab_size, Split split, int B, int T, uint64_t seed, int dp_rank,
                       int dp_size)
    : DataLoader(kMqarKindId, split, B, T, seed, dp_rank, dp_size),
      pairs_(pairs),
      queries_(queries == 0 ? pairs : queries),
      vocab_size_(vocab_size) {
  if (pairs < 1) throw ConfigError(str_cat("[data] data.mqar_pairs = ", pairs, " must be at least 1"));
  if (queries < 0) throw ConfigError(str_cat("[data] data.mqar_queries = ", queries, " must be >= 0 (0 = mqar_pairs)"));
  const int64_t need_len = 2 * int64_t{pairs} + queries_;
  if (T < need_len) {
    throw ConfigError(str_cat("[data] mqar with data.mqar_pairs = ", pairs, " and ", queries_,
                              " queries needs data.seq_len >= 2 * pairs + queries = ", need_len, ", got ", T,
                              "; raise data.seq_len or lower data.mqar_pairs / data.mqar_queries"));
  }
  if (int64_t{vocab_size} < 2 * int64_t{pairs} + 2) {
    throw ConfigError(str_cat("[data] mqar with data.mqar_pairs = ", pairs, " needs model.vocab_size >= 2 * pairs + 2 = ",
                              2 * int64_t{pairs} + 2, " (distinct keys from [1, V/2), values from [V/2, V)), got ",
                              vocab_size, "; raise model.vocab_size or lower data.mqar_pairs"));
  }
  const int slots = T - 2 * pairs;
  slot_scale_.resize(static_cast<size_t>(slots));
  for (int s = 0; s < slots; ++s) slot_scale_[static_cast<size_t>(s)] = std::pow(s + 1.0, 1.0 - kPowerA);
}

std::string MqarLoader::name() const {
  return str_cat("mqar [", split_name(split()), ": pairs=", pairs_, " queries=", queries_, " vocab=", vocab_size_,
                 " seq_len=", seq_len(), "]");
}

void MqarLoader::fill_sequence(uint64_t index, int32_t* inputs, int32_t* targets) const {
  Rng rng = sequence_rng(index);
  const int P = pairs_, Q = queries_, T = seq_len(), V = vocab_size_;
  const int R = T - 2 * P;

  // Context: k1 v1 ... kP vP.
  const std::vector<int32_t> keys = sample_distinct(rng, key_begin(), key_end(), P);
  const std::vector<int32_t> values = sample_distinct(rng, value_begin(), V, P);
  for (int i = 0; i < P; ++i) {
    inputs[2 * i] = keys[static_cast<size_t>(i)];
    inputs[2 * i + 1] = values[static_cast<size_t>(i)];
  }
  for (int t = 0; t < T; ++t) targets[t] = kIgnoreTarget;
  // Noise on every slot after the context; queries overwrite some below.
  for (int s = 0; s < R; ++s) inputs[2 * P + s] = static_cast<int32_t>(rng.below(static_cast<uint64_t>(V)));

  // Query slots: the Q largest Efraimidis-Spirakis keys, in draw order.
  std::vector<std::pair<double, int>> draw(static_cast<size_t>(R));
  for (int s = 0; s < R; ++s) {
    const size_t i = static_cast<size_t>(s);
    draw[i] = {std::log(open_uniform(rng)) * slot_scale_[i], s};
  }
  std::partial_sort(draw.begin(), draw.begin() + Q, draw.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });

  // The key index asked by each draw: the j-th draw asks the j-th queried key
  // in context order.
  std::vector<int> asked;
  asked.reserve(static_cast<size_t>(Q));
  if (Q <= P) {
    for (int32_t i : sample_distinct(rng, 0, P, Q)) asked.push_back(i);
    std::sort(asked.begin(), asked.end());
  } else {
    for (int i = 0; i < P; ++i) asked.push_back(i);
    for (int j = P; j < Q; ++j) asked.push_back(static_cast<int>(rng.below(static_cast<uint64_t>(P))));
  }
  for (int j = 0; j < Q; ++j) {
    const int pos = 2 * P + draw[static_cast<size_t>(j)].second;
    const size_t k = static_cast<size_t>(asked[static_cast<size_t>(j)]);
    inputs[pos] = keys[k];
    targets[pos] = values[k];
  }
}

std::unique_ptr<DataLoader> make_mqar_loader(const DataConfig& cfg, Split split, int vocab_size, int B, int T,
                                             uint64_t seed, int dp_rank, int dp_size) {
  return std::make_unique<MqarLoader>(cfg.mqar_pairs, cfg.mqar_queries, vocab_size, split, B, T, seed, dp_rank,
                                      dp_size);
}

}  // namespace lintrain
