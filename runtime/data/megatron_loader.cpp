#include "runtime/data/megatron_loader.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "runtime/checkpoint/checksum.h"
#include "runtime/data/megatron_dataset.h"
#include "runtime/error.h"

namespace lintrain {

namespace {

constexpr uint64_t kMegatronKindId = 3;

// One split of one dataset as a stream: its documents, each followed by the
// EOD when add_eod. Where document first_doc + j starts in it is a function
// of the .idx alone (start(j)), so no per-document table is built: a corpus
// of 100M documents costs no memory beyond its mapping.
struct SplitStream {
  std::shared_ptr<const MegatronDataset> ds;
  uint64_t first_doc = 0, docs = 0;
  int32_t eod = 0;
  bool add_eod = true;

  uint64_t start(uint64_t j) const {
    return ds->document_begin(first_doc + j) - ds->document_begin(first_doc) + (add_eod ? j : 0);
  }
  uint64_t length() const { return start(docs); }
  uint64_t tokens() const { return ds->document_begin(first_doc + docs) - ds->document_begin(first_doc); }

  // Writes stream positions [pos, pos + n) to out (pos + n <= length()).
  void read(uint64_t pos, uint64_t n, int32_t* out) const {
    // j: the last document starting at or before pos (start() rises with j).
    uint64_t lo = 0, hi = docs;  // start(lo) <= pos < start(hi)
    while (hi - lo > 1) {
      const uint64_t mid = lo + (hi - lo) / 2;
      (start(mid) <= pos ? lo : hi) = mid;
    }
    uint64_t j = lo;
    while (n > 0) {
      while (pos >= start(j + 1)) ++j;  // past the end of document j (or j is empty)
      const uint64_t begin = ds->document_begin(first_doc + j);
      const uint64_t len = ds->document_begin(first_doc + j + 1) - begin;
      const uint64_t off = pos - start(j);
      if (off < len) {
        const uint64_t take = std::min(n, len - off);
        for (uint64_t t = 0; t < take; ++t) out[t] = ds->token(begin + off + t);
        out += take;
        pos += take;
        n -= take;
      } else {  // the EOD after document j
        *out++ = eod;
        ++pos;
        --n;
      }
    }
  }
};

class MegatronLoader : public DataLoader {
 public:
  MegatronLoader(std::vector<SplitStream> parts, std::vector<double> weights, Split split, int B, int T, uint64_t seed,
                 int dp_rank, int dp_size)
      : DataLoader(kMegatronKindId, split, B, T, seed, dp_rank, dp_size),
        parts_(std::move(parts)),
        weights_(std::move(weights)),
        schedule_(blend_schedule(weights_, parts_.size() == 1 ? 1 : kBlendPeriod)),
        per_period_(parts_.size(), 0) {
    slot_rank_.resize(schedule_.size());
    for (size_t r = 0; r < schedule_.size(); ++r) slot_rank_[r] = per_period_[static_cast<size_t>(schedule_[r])]++;
  }

  std::string name() const override {
    uint64_t tokens = 0, docs = 0;
    for (const SplitStream& p : parts_) {
      tokens += p.tokens();
      docs += p.docs;
    }
    std::string what = parts_.size() == 1 ? str_cat("'", parts_[0].ds->prefix(), "'") : "blend of";
    for (size_t k = 0; parts_.size() > 1 && k < parts_.size(); ++k)
      what += str_cat(k ? ", " : " ", weights_[k], " '", parts_[k].ds->prefix(), "'");
    return str_cat("megatron ", what, " [", split_name(split()), ": ", tokens, " tokens in ", docs, " documents]");
  }

  uint64_t distinct_sequences() const override {
    if (split() == Split::Train) return 0;
    // The stream repeats once some dataset has served all its W windows: its
    // W-th sequence is in period W / n_k, at the slot of its (W mod n_k)-th one.
    uint64_t first_repeat = UINT64_MAX;
    const uint64_t P = schedule_.size();
    for (size_t k = 0; k < parts_.size(); ++k) {
      const uint64_t W = windows(k), n = per_period_[k];
      uint64_t slot = 0;
      for (uint64_t r = 0; r < P; ++r)
        if (static_cast<size_t>(schedule_[r]) == k && slot_rank_[r] == W % n) {
          slot = r;
          break;
        }
      first_repeat = std::min(first_repeat, W / n * P + slot);
    }
    return first_repeat;
  }

  std::string fingerprint() const override {
    std::vector<uint64_t> digests;
    uint64_t tokens = 0;
    for (const SplitStream& p : parts_) {
      digests.push_back(p.ds->digest());
      tokens += p.ds->num_tokens();
    }
    return str_cat(tokens, " tokens in ", parts_.size(), " dataset", parts_.size() == 1 ? "" : "s", ", xxh3 ",
                   xxh3_hex(xxh3_of(digests.data(), digests.size() * sizeof(uint64_t))));
  }

 protected:
  void fill_sequence(uint64_t index, int32_t* inputs, int32_t* targets) const override {
    const uint64_t T = static_cast<uint64_t>(seq_len()), P = schedule_.size();
    const uint64_t r = index % P;
    const size_t k = static_cast<size_t>(schedule_[r]);
    const SplitStream& part = parts_[k];
    uint64_t start;
    if (split() == Split::Train) {
      Rng rng = sequence_rng(index);
      start = rng.below(part.length() - T);
    } else {
      const uint64_t j = index / P * per_period_[k] + slot_rank_[r];
      start = (j % windows(k)) * T;
    }
    part.read(start, T, inputs);
    std::copy(inputs + 1, inputs + T, targets);
    part.read(start + T, 1, targets + T - 1);
  }

 private:
  uint64_t windows(size_t k) const { return (parts_[k].length() - 1) / static_cast<uint64_t>(seq_len()); }

  std::vector<SplitStream> parts_;
  std::vector<double> weights_;
  std::vector<int> schedule_;        // dataset of each slot of a period
  std::vector<uint64_t> per_period_;  // n_k: slots of dataset k in a period
  std::vector<uint64_t> slot_rank_;   // slots of the same dataset before slot r
};

SplitStream split_stream(std::shared_ptr<const MegatronDataset> ds, const BlendPart& part, const DataConfig& cfg,
                         Split split, int eod, int T) {
  const uint64_t D = ds->num_documents();
  if (D < 2)
    throw ConfigError(str_cat("[data] ", part.what, " '", part.prefix, "' holds ", D, " document, which cannot be split "
                              "into training and validation documents; prepare it with more documents (one per "
                              "file, or scripts/prepare_data.py --split-blank-lines)"));
  const uint64_t valid = std::clamp<uint64_t>(
      static_cast<uint64_t>(std::ceil(static_cast<double>(D) * cfg.valid_fraction)), 1, D - 1);
  SplitStream s;
  s.ds = std::move(ds);
  s.first_doc = split == Split::Train ? 0 : D - valid;
  s.docs = split == Split::Train ? D - valid : valid;
  s.eod = eod;
  s.add_eod = cfg.add_eod;
  const uint64_t need = static_cast<uint64_t>(T) + 1;
  if (s.length() < need)
    throw ConfigError(str_cat("[data] the ", split_name(split), " split of ", part.what, " '", part.prefix, "' (",
                              s.docs, " of its ", D, " documents) holds ", s.length(), " tokens", s.add_eod ? " with EODs" : "",
                              " but data.seq_len = ", T, " needs at least ", need,
                              "; lower data.seq_len", split == Split::Valid ? ", raise data.valid_fraction" : "",
                              " or use more data"));
  return s;
}

}  // namespace

std::vector<BlendPart> megatron_blend(const DataConfig& cfg) {
  if (cfg.blend.empty()) {
    if (cfg.path.empty())
      throw ConfigError("[data] data.kind megatron needs data.path (the prefix of a .bin/.idx pair) or data.blend "
                        "([weight, prefix, weight, prefix, ...])");
    return {BlendPart{1.0, cfg.path, "data.path"}};
  }
  if (!cfg.path.empty())
    throw ConfigError(str_cat("[data] data.path '", cfg.path, "' and data.blend are both set; give one prefix in "
                              "data.path or all of them, with weights, in data.blend"));
  if (cfg.blend.size() % 2 != 0)
    throw ConfigError(str_cat("[data] data.blend has ", cfg.blend.size(), " entries; it is pairs of a weight and a "
                              "prefix, e.g. [0.7, data/web, 0.3, data/code]"));
  if (cfg.blend.size() / 2 > static_cast<size_t>(kBlendPeriod))
    throw ConfigError(str_cat("[data] data.blend names ", cfg.blend.size() / 2, " datasets; at most ", kBlendPeriod,
                              " can be blended"));
  std::vector<BlendPart> parts;
  for (size_t i = 0; i < cfg.blend.size(); i += 2) {
    const std::string& w = cfg.blend[i];
    char* end = nullptr;
    const double weight = std::strtod(w.c_str(), &end);
    const std::string what = str_cat("data.blend[", i + 1, "]");
    if (w.empty() || end != w.c_str() + w.size() || !std::isfinite(weight) || !(weight > 0))
      throw ConfigError(str_cat("[data] data.blend[", i, "] = '", w, "' is not a positive weight; data.blend is pairs "
                                "of a weight and a prefix, e.g. [0.7, data/web, 0.3, data/code]"));
    if (cfg.blend[i + 1].empty())
      throw ConfigError(str_cat("[data] ", what, " (the prefix after weight ", w, ") is empty"));
    parts.push_back(BlendPart{weight, cfg.blend[i + 1], what});
  }
  return parts;
}

std::vector<int> blend_schedule(const std::vector<double>& weights, int period) {
  const size_t K = weights.size();
  LT_CHECK(K >= 1 && K <= static_cast<size_t>(period), "[data] cannot blend ", K, " datasets in a period of ", period);
  double total = 0;
  for (double w : weights) total += w;
  // n_k: floor of the quota, at least 1, then the remaining slots by largest remainder.
  std::vector<int64_t> n(K);
  std::vector<double> rest(K);
  int64_t used = 0;
  for (size_t k = 0; k < K; ++k) {
    const double q = weights[k] / total * period;
    n[k] = std::max<int64_t>(1, static_cast<int64_t>(std::floor(q)));
    rest[k] = q - std::floor(q);
    used += n[k];
  }
  std::vector<size_t> order(K);
  for (size_t k = 0; k < K; ++k) order[k] = k;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return rest[a] > rest[b]; });
  for (size_t i = 0; used < period; i = (i + 1) % K, ++used) ++n[order[i]];
  while (used > period) {  // the at-least-one rule overshot: take from the largest
    const size_t big = static_cast<size_t>(std::max_element(n.begin(), n.end()) - n.begin());
    --n[big];
    --used;
  }
  // Greedy: slot r goes to the dataset furthest below its target n_k (r+1)/P.
  std::vector<int> schedule(static_cast<size_t>(period));
  std::vector<int64_t> served(K, 0);
  for (int64_t r = 0; r < period; ++r) {
    size_t best = K;
    int64_t best_gap = 0;
    for (size_t k = 0; k < K; ++k) {
      if (served[k] >= n[k]) continue;
      const int64_t gap = n[k] * (r + 1) - served[k] * period;  // (target - served) x P
      if (best == K || gap > best_gap) {
        best = k;
        best_gap = gap;
      }
    }
    schedule[static_cast<size_t>(r)] = static_cast<int>(best);
    ++served[best];
  }
  return schedule;
}

int megatron_eod_token(const DataConfig& cfg, int vocab_size) {
  return cfg.eod_token < 0 ? vocab_size - 1 : cfg.eod_token;
}

std::unique_ptr<DataLoader> make_megatron_loader(const DataConfig& cfg, Split split, int vocab_size, int B, int T,
                                                 uint64_t seed, int dp_rank, int dp_size) {
  if (!(cfg.valid_fraction > 0.0 && cfg.valid_fraction < 1.0))
    throw ConfigError(str_cat("[data] data.valid_fraction = ", cfg.valid_fraction,
                              " must be in (0, 1) for data.kind megatron"));
  const int eod = megatron_eod_token(cfg, vocab_size);
  if (eod >= vocab_size)
    throw ConfigError(str_cat("[data] data.eod_token = ", eod, " is not below model.vocab_size = ", vocab_size,
                              "; use the tokenizer's end-of-document id (scripts/prepare_data.py prints it)"));
  std::vector<SplitStream> streams;
  std::vector<double> weights;
  for (const BlendPart& part : megatron_blend(cfg)) {
    auto ds = std::make_shared<const MegatronDataset>(MegatronDataset::open(part.prefix, vocab_size, part.what));
    streams.push_back(split_stream(std::move(ds), part, cfg, split, eod, T));
    weights.push_back(part.weight);
  }
  return std::make_unique<MegatronLoader>(std::move(streams), std::move(weights), split, B, T, seed, dp_rank, dp_size);
}

}  // namespace lintrain
