// Softmax-attention layer core: copy qkv, rotate q and k in the copy (the
// model's qkv stays untouched for its own backward), run the blockwise kernel.
// The backward writes the kernel's dq/dk/dv straight into dqkv's column
// ranges (strided) and un-rotates dq and dk there, so no extra buffer is used.
// Under SP (LASP-2H) the k|v columns travel: AllGather in forward,
// reduce-scatter of their gradients in backward (see the header).
#include "layers/softmax_attention.h"

#include <algorithm>
#include <cstring>

#include "parallel/communicator.h"
#include "runtime/error.h"
#include "runtime/ops.h"

namespace lintrain {

SoftmaxAttentionCore::SoftmaxAttentionCore(const Context& ctx, const ModelConfig& cfg, int B, int T,
                                           Communicator* sp)
    : ctx_(ctx), B_(B), T_(T), H_(cfg.num_attention_heads), KVH_(cfg.kv_heads()), d_(0), theta_(cfg.rope_theta) {
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
  if (sp != nullptr && sp->size() > 1) {
    sp_ = sp;
    W_ = sp->size();
    rank_ = sp->rank();
    LT_CHECK(rank_ >= 0 && rank_ < W_, "[SoftmaxAttentionCore] SP rank ", rank_, " outside [0, ", W_, ")");
    const size_t kvw = 2 * static_cast<size_t>(KVH_) * d_, seen = static_cast<size_t>(B) * (rank_ + 1) * T;
    kv_.resize(seen * kvw);
    dkv_.resize(seen * kvw);
    xchg_.resize(static_cast<size_t>(W_) * N * kvw);
    local_.resize(N * kvw);
  }
  ctx_.arena("SoftmaxAttentionCore").reserve(scratch_bytes());
}

size_t SoftmaxAttentionCore::scratch_bytes() const {
  return std::max(softmax_attention_forward_scratch_bytes(ctx_.device, dims()),
                  softmax_attention_backward_scratch_bytes(ctx_.device, dims()));
}

AttentionDims SoftmaxAttentionCore::dims() const {
  AttentionDims a;
  a.B = B_;
  a.Tq = T_;
  a.Tk = (rank_ + 1) * T_;  // the keys of chunks 0..rank (just T_ on one rank)
  a.H = H_;
  a.KVH = KVH_;
  a.d = d_;
  a.q_offset = rank_ * T_;
  return a;
}

size_t SoftmaxAttentionCore::saved_bytes() const {
  const size_t table = static_cast<size_t>(T_) * d_ * sizeof(float);  // what rope_ holds once built
  return (qkv_rot_.size() + o_.size() + lse_.size() + kv_.size()) * sizeof(float) + table;
}

size_t SoftmaxAttentionCore::workspace_bytes() const {
  return (dkv_.size() + xchg_.size() + local_.size()) * sizeof(float);
}

void SoftmaxAttentionCore::forward(float* out, const float* qkv, int pos_offset) {
  LT_CHECK(pos_offset >= 0, "[SoftmaxAttentionCore::forward] pos_offset must be >= 0, got ", pos_offset);
  if (pos_offset_ != pos_offset) rope_ = RopeTable(d_, theta_, pos_offset + rank_ * T_, T_, ctx_.device);
  pos_offset_ = pos_offset;
  const int W = qkv_width(), first = pos_offset + rank_ * T_;
  std::copy(qkv, qkv + qkv_rot_.size(), qkv_rot_.begin());
  float* q = qkv_rot_.data();
  float* k = q + H_ * d_;
  const float* v = k + KVH_ * d_;
  rope_forward(ctx_, k, W, B_, T_, KVH_, first, rope_);
  if (sp_) {
    forward_sp(q, first);
  } else {
    rope_forward(ctx_, q, W, B_, T_, H_, first, rope_);
    softmax_attention_forward(ctx_, dims(), o_.data(), out_width(), lse_.data(), q, W, k, W, v, W);
  }
  std::copy(o_.begin(), o_.end(), out);
}

void SoftmaxAttentionCore::forward_sp(const float* q, int first) {
  const int W = qkv_width(), kvw = 2 * KVH_ * d_;
  const size_t N = static_cast<size_t>(B_) * T_, chunk = static_cast<size_t>(T_) * kvw;
  // Send this chunk's rotated k|v rows (adjacent columns of qkv_rot_).
  for (size_t n = 0; n < N; ++n)
    std::memcpy(local_.data() + n * kvw, qkv_rot_.data() + n * W + H_ * d_, kvw * sizeof(float));
  Request gather = sp_->iall_gather(local_.data(), xchg_.data(), local_.size());
  rope_forward(ctx_, qkv_rot_.data(), W, B_, T_, H_, first, rope_);  // overlaps the gather
  gather->wait();
  // Rank-major (W, B, T, kvw) -> (B, (rank+1)*T, kvw), keeping chunks 0..rank.
  const size_t Tk = static_cast<size_t>(rank_ + 1) * T_;
  for (int u = 0; u <= rank_; ++u)
    for (int b = 0; b < B_; ++b)
      std::memcpy(kv_.data() + (b * Tk + static_cast<size_t>(u) * T_) * kvw,
                  xchg_.data() + (static_cast<size_t>(u) * B_ + b) * chunk, chunk * sizeof(float));
  softmax_attention_forward(ctx_, dims(), o_.data(), out_width(), lse_.data(), q, W, kv_.data(), kvw,
                            kv_.data() + KVH_ * d_, kvw);
}

void SoftmaxAttentionCore::backward(float* dqkv, const float* dout) {
  LT_CHECK(pos_offset_ >= 0, "[SoftmaxAttentionCore::backward] called before forward: nothing saved");
  const int W = qkv_width(), first = pos_offset_ + rank_ * T_;
  float* dq = dqkv;
  float* dk = dq + H_ * d_;
  if (sp_) {
    backward_sp(dqkv, dout);
  } else {
    const float* q = qkv_rot_.data();
    const float* k = q + H_ * d_;
    const float* v = k + KVH_ * d_;
    float* dv = dk + KVH_ * d_;
    softmax_attention_backward(ctx_, dims(), dq, W, dk, W, dv, W, dout, out_width(), q, W, k, W, v, W, o_.data(),
                               out_width(), lse_.data());
    rope_backward(ctx_, dq, W, B_, T_, H_, first, rope_);
  }
  rope_backward(ctx_, dk, W, B_, T_, KVH_, first, rope_);
}

void SoftmaxAttentionCore::backward_sp(float* dqkv, const float* dout) {
  const int W = qkv_width(), kvw = 2 * KVH_ * d_;
  const size_t N = static_cast<size_t>(B_) * T_, chunk = static_cast<size_t>(T_) * kvw;
  const size_t Tk = static_cast<size_t>(rank_ + 1) * T_;
  softmax_attention_backward(ctx_, dims(), dqkv, W, dkv_.data(), kvw, dkv_.data() + KVH_ * d_, kvw, dout, out_width(),
                             qkv_rot_.data(), W, kv_.data(), kvw, kv_.data() + KVH_ * d_, kvw, o_.data(),
                             out_width(), lse_.data());
  // (B, (rank+1)*T, kvw) -> rank-major by owner (W, B, T, kvw); later chunks get zeros.
  for (int u = 0; u < W_; ++u)
    for (int b = 0; b < B_; ++b) {
      float* dst = xchg_.data() + (static_cast<size_t>(u) * B_ + b) * chunk;
      if (u <= rank_)
        std::memcpy(dst, dkv_.data() + (b * Tk + static_cast<size_t>(u) * T_) * kvw, chunk * sizeof(float));
      else
        std::fill(dst, dst + chunk, 0.0f);
    }
  Request scatter = sp_->ireduce_scatter(xchg_.data(), local_.data(), local_.size());
  rope_backward(ctx_, dqkv, W, B_, T_, H_, pos_offset_ + rank_ * T_, rope_);  // dq, overlaps the reduce-scatter
  scatter->wait();
  for (size_t n = 0; n < N; ++n)
    std::memcpy(dqkv + n * W + H_ * d_, local_.data() + n * kvw, kvw * sizeof(float));
}

}  // namespace lintrain
