// The whole model under sequence parallelism: W ranks (threads of one
// process, see sp_test_group.h), each holding one contiguous chunk of every
// sequence, give the single-rank loss, and their summed parameter gradients
// (what the DP x SP all-reduce forms) equal the single-rank gradient.
#include <gtest/gtest.h>

#include <cmath>
#include <mutex>
#include <vector>

#include "layers/model.h"
#include "runtime/rng.h"
#include "sp_test_group.h"

using namespace lintrain;

namespace {

ModelConfig sp_model(const std::string& variant, const std::string& pattern) {
  ModelConfig m;
  m.vocab_size = 29;
  m.hidden_size = 16;
  m.num_hidden_layers = 3;
  m.num_attention_heads = 4;
  m.num_key_value_heads = 2;
  m.intermediate_size = 24;
  m.layer_pattern = pattern;
  m.linear_attention.variant = variant;
  m.linear_attention.block_size = 3;  // chunks of 6 or 3 tokens end in partial blocks
  m.initializer_range = 0.2;
  return m;
}

// Single rank on (B, T) vs W ranks on (B, T / W) chunks.
void check_sp_matches_single(const ModelConfig& cfg, int W) {
  const int B = 2, T = 12, C = T / W;
  Rng rng(17);
  std::vector<int32_t> tokens(B * T), targets(B * T);
  for (auto& t : tokens) t = static_cast<int32_t>(rng.below(cfg.vocab_size));
  for (auto& t : targets) t = static_cast<int32_t>(rng.below(cfg.vocab_size));
  targets[5] = -1;
  const float scale = 1.0f / (B * T - 1);

  LinearLlama single(cfg, B, T);
  single.init_weights(3);
  single.grads().zero();
  const CrossEntropyStats ref = single.forward_backward(tokens.data(), targets.data(), scale);

  std::vector<double> grad_sum(single.grads().numel(), 0.0);
  double loss_sum = 0;
  int64_t count = 0;
  std::mutex mu;
  test::SpTestGroup::run(W, [&](Communicator& sp, int j) {
    LinearLlama model(cfg, B, C, false, &sp);
    model.init_weights(3);
    model.grads().zero();
    std::vector<int32_t> tok(B * C), tgt(B * C);
    for (int b = 0; b < B; ++b)
      for (int t = 0; t < C; ++t) {
        tok[b * C + t] = tokens[b * T + j * C + t];
        tgt[b * C + t] = targets[b * T + j * C + t];
      }
    const CrossEntropyStats s = model.forward_backward(tok.data(), tgt.data(), scale);
    std::lock_guard<std::mutex> lock(mu);
    loss_sum += s.loss_sum;
    count += s.count;
    for (int64_t i = 0; i < model.grads().numel(); ++i) grad_sum[i] += model.grads().data()[i];
  });
  EXPECT_EQ(count, ref.count);
  // fp32 forward with a different association of the same sums (chunk states
  // vs one running state): agreement to ~1e-6 relative; 1e-5 is the bar.
  EXPECT_NEAR(loss_sum, ref.loss_sum, 1e-5 * ref.loss_sum);
  double max_err = 0, max_ref = 0;
  for (int64_t i = 0; i < single.grads().numel(); ++i) {
    max_err = std::max(max_err, std::fabs(grad_sum[i] - single.grads().data()[i]));
    max_ref = std::max(max_ref, std::fabs(static_cast<double>(single.grads().data()[i])));
  }
  EXPECT_LT(max_err, 1e-5 * max_ref) << cfg.linear_attention.variant << " " << cfg.layer_pattern << " W=" << W;
}

}  // namespace

TEST(ModelSequenceParallel, HybridLightningMatchesSingleRank) {
  for (int W : {2, 3, 4}) check_sp_matches_single(sp_model("lightning", "LLS"), W);
}
TEST(ModelSequenceParallel, RetNetAndBasicMatchSingleRank) {
  for (int W : {2, 4}) {
    check_sp_matches_single(sp_model("retnet", "LSL"), W);
    check_sp_matches_single(sp_model("basic", "L"), W);
  }
}
TEST(ModelSequenceParallel, SoftmaxOnlyMatchesSingleRank) {
  for (int W : {2, 4}) check_sp_matches_single(sp_model("lightning", "S"), W);
}
TEST(ModelSequenceParallel, FixedDecayMatchesSingleRank) {
  ModelConfig m = sp_model("basic", "LS");
  m.linear_attention.decay = "0.8";
  check_sp_matches_single(m, 4);
}
