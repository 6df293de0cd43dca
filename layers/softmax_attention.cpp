// Softmax-attention layer core: copy qkv, rotate q and k in the copy (the
// model's qkv stays untouched for its own backward), run the blockwise kernel.
// The backward writes the kernel's dq/dk/dv straight into dqkv's column
// ranges (strided) and un-rotates dq and dk there, so no extra buffer is used.
#include "layers/softmax_attention.h"

#include <algorithm>

#include "runtime/error.h"

namespace lintrain {

SoftmaxAttentionCore::SoftmaxAttentionCore(const ModelConfig& cfg, int B, int T)
    : B_(B), T_(T), H_(cfg.num_attention_heads), KVH_(cfg.kv_heads()), d_(0), theta_(cfg.rope_theta) {
  LT_CHECK(B > 0 && T > 0, "[SoftmaxAttentionCore] batch B=", B, " and sequence length T=", T, " must be >= 1");
  LT_CHECK(H_ > 0 && cfg.hidden_size % H_ == 0, "[SoftmaxAttentionCore] hidden_size=", cfg.hidden_size,
           " must be a multiple of num_attention_heads=", H_);
  LT_CHECK(KVH_ > 0 && H_ % KVH_ == 0, "[SoftmaxAttentionCore] num_attention_heads=", H_,
           " must be a multiple of num_key_value_heads=", KVH_);
  d_ = cfg.head_dim();
  LT_CHECK(d_ % 2 == 0, "[SoftmaxAttentionCore] head_dim = hidden_size / num_attention_heads = ", d_,
           " must be even for RoPE");
  const size_t N = static_cast<size_t>(B) * T;
  qkv_rot_.resize(N * qkv_width());
  o_.resize(N * out_width());
  lse_.resize(static_cast<size_t>(B) * H_ * T);
}

AttentionDims SoftmaxAttentionCore::dims() const {
  AttentionDims a;
  a.B = B_;
  a.Tq = T_;
  a.Tk = T_;
  a.H = H_;
  a.KVH = KVH_;
  a.d = d_;
  a.q_offset = 0;
  return a;
}

size_t SoftmaxAttentionCore::saved_bytes() const {
  const size_t table = static_cast<size_t>(T_) * d_ * sizeof(float);  // what rope_ holds once built
  return (qkv_rot_.size() + o_.size() + lse_.size()) * sizeof(float) + table;
}

void SoftmaxAttentionCore::forward(float* out, const float* qkv, int pos_offset) {
  LT_CHECK(pos_offset >= 0, "[SoftmaxAttentionCore::forward] pos_offset must be >= 0, got ", pos_offset);
  if (pos_offset_ != pos_offset) rope_ = RopeTable(d_, theta_, pos_offset, T_);
  pos_offset_ = pos_offset;
  const int W = qkv_width();
  std::copy(qkv, qkv + qkv_rot_.size(), qkv_rot_.begin());
  float* q = qkv_rot_.data();
  float* k = q + H_ * d_;
  const float* v = k + KVH_ * d_;
  rope_forward(q, W, B_, T_, H_, pos_offset, rope_);
  rope_forward(k, W, B_, T_, KVH_, pos_offset, rope_);
  softmax_attention_forward(dims(), o_.data(), out_width(), lse_.data(), q, W, k, W, v, W);
  std::copy(o_.begin(), o_.end(), out);
}

void SoftmaxAttentionCore::backward(float* dqkv, const float* dout) {
  LT_CHECK(pos_offset_ >= 0, "[SoftmaxAttentionCore::backward] called before forward: nothing saved");
  const int W = qkv_width();
  const float* q = qkv_rot_.data();
  const float* k = q + H_ * d_;
  const float* v = k + KVH_ * d_;
  float* dq = dqkv;
  float* dk = dq + H_ * d_;
  float* dv = dk + KVH_ * d_;
  softmax_attention_backward(dims(), dq, W, dk, W, dv, W, dout, out_width(), q, W, k, W, v, W, o_.data(),
                             out_width(), lse_.data());
  rope_backward(dq, W, B_, T_, H_, pos_offset_, rope_);
  rope_backward(dk, W, B_, T_, KVH_, pos_offset_, rope_);
}

}  // namespace lintrain
