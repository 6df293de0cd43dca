#include "runtime/data/data_loader.h"

#include "runtime/data/megatron_loader.h"
#include "runtime/data/mqar.h"
#include "runtime/data/text_data.h"
#include "runtime/data/token_file.h"
#include "runtime/error.h"

namespace lintrain {

namespace {
// Base of the data loaders' Rng stream ids ("data" in ASCII), apart from the
// ids other parts of lintrain use for initialisation etc.
constexpr uint64_t kDataStreamBase = 0x64617461;
}  // namespace

const char* split_name(Split s) { return s == Split::Train ? "train" : "valid"; }

DataLoader::DataLoader(uint64_t kind_id, Split split, int B, int T, uint64_t seed, int dp_rank, int dp_size)
    : split_(split), B_(B), T_(T), dp_rank_(dp_rank), dp_size_(dp_size) {
  LT_CHECK(B >= 1 && T >= 1, "[data] batch size and sequence length must be positive, got B=", B, " T=", T);
  LT_CHECK(dp_size >= 1 && dp_rank >= 0 && dp_rank < dp_size, "[data] invalid data-parallel rank ", dp_rank,
           " of ", dp_size);
  const uint64_t stream_id = kDataStreamBase + 2 * kind_id + (split == Split::Train ? 0 : 1);
  state_.stream_seed = Rng::stream(seed, stream_id).next_u64();
}

void DataLoader::next(Batch& batch) {
  batch.resize(B_, T_);
  const uint64_t first = state_.sequences + static_cast<uint64_t>(dp_rank_) * static_cast<uint64_t>(B_);
  for (int b = 0; b < B_; ++b) fill_sequence(first + static_cast<uint64_t>(b), batch.input_row(b), batch.target_row(b));
  state_.sequences += static_cast<uint64_t>(B_) * static_cast<uint64_t>(dp_size_);
}

void DataLoader::restore(const DataLoaderState& state) {
  LT_CHECK(state.stream_seed == state_.stream_seed, "[data] cannot restore the position of ", name(),
           ": the saved state belongs to a loader with a different seed, split or data.kind");
  state_ = state;
}

std::unique_ptr<DataLoader> make_data_loader(const DataConfig& cfg, Split split, int vocab_size, int B, int T,
                                             uint64_t seed, int dp_rank, int dp_size) {
  if (vocab_size < 1) throw ConfigError(str_cat("[data] model.vocab_size = ", vocab_size, " must be positive"));
  if (cfg.kind == "text") return make_text_loader(cfg, split, vocab_size, B, T, seed, dp_rank, dp_size);
  if (cfg.kind == "tokens") return make_token_file_loader(cfg, split, vocab_size, B, T, seed, dp_rank, dp_size);
  if (cfg.kind == "mqar") return make_mqar_loader(cfg, split, vocab_size, B, T, seed, dp_rank, dp_size);
  if (cfg.kind == "megatron") return make_megatron_loader(cfg, split, vocab_size, B, T, seed, dp_rank, dp_size);
  throw ConfigError(str_cat("[data] data.kind = '", cfg.kind, "' is not one of mqar | text | tokens | megatron"));
}

}  // namespace lintrain
