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
#include "runtime/buffer_plan.h"
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
  BufferPlan plan;
  saved_floats_ = N * qkv_width() + N * out_width() + static_cast<size_t>(B) * H_ * T;
  plan.add(&qkv_rot_, N * qkv_width());
  plan.add(&o_, N * out_width());
  plan.add(&lse_, static_cast<size_t>(B) * H_ * T);
  if (sp != nullptr && sp->size() > 1) {
    sp_ = sp;
    W_ = sp->size();
    rank_ = sp->rank();
    LT_CHECK(rank_ >= 0 && rank_ < W_, "[SoftmaxAttentionCore] SP rank ", rank_, " outside [0, ", W_, ")");
    LT_CHECK(sp->device() == ctx.device, "[SoftmaxAttentionCore] the SP communicator (", sp->name(), ") takes ",
             device_name(sp->device()), " buffers but the layer runs on ", device_name(ctx.device),
             ": LASP-2H needs a communicator of the layer's device (NCCL for cuda)");
    const size_t kvw = 2 * static_cast<size_t>(KVH_) * d_, seen = static_cast<size_t>(B) * (rank_ + 1) * T;
    plan.add(&kv_, seen * kvw);
    plan.add(&dkv_, seen * kvw);
    plan.add(&xchg_, static_cast<size_t>(W_) * N * kvw);
    plan.add(&local_, N * kvw);
    saved_floats_ += seen * kvw;
    workspace_floats_ = seen * kvw + static_cast<size_t>(W_) * N * kvw + N * kvw;
  }
  buffers_ = plan.allocate(ctx_.device);
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
  return saved_floats_ * sizeof(float) + table;
}

size_t SoftmaxAttentionCore::workspace_bytes() const {
  return workspace_floats_ * sizeof(float);
}

void SoftmaxAttentionCore::forward(float* out, const float* qkv, int pos_offset) {
  LT_CHECK(pos_offset >= 0, "[SoftmaxAttentionCore::forward] pos_offset must be >= 0, got ", pos_offset);
  if (pos_offset_ != pos_offset) rope_ = RopeTable(d_, theta_, pos_offset + rank_ * T_, T_, ctx_.device);
  pos_offset_ = pos_offset;
  const int W = qkv_width(), first = pos_offset + rank_ * T_;
  const int64_t N = static_cast<int64_t>(B_) * T_;
  copy_floats(ctx_, qkv_rot_, qkv, N * W);
  float* q = qkv_rot_;
  float* k = q + H_ * d_;
  const float* v = k + KVH_ * d_;
  rope_forward(ctx_, k, W, B_, T_, KVH_, first, rope_);
  if (sp_) {
    forward_sp(q, first);
  } else {
    rope_forward(ctx_, q, W, B_, T_, H_, first, rope_);
    softmax_attention_forward(ctx_, dims(), o_, out_width(), lse_, q, W, k, W, v, W);
  }
  copy_floats(ctx_, out, o_, N * out_width());
}

void SoftmaxAttentionCore::forward_sp(const float* q, int first) {
  const int W = qkv_width(), kvw = 2 * KVH_ * d_;
  const size_t N = static_cast<size_t>(B_) * T_, chunk = static_cast<size_t>(T_) * kvw;
  // Send this chunk's rotated k|v rows (adjacent columns of qkv_rot_).
  copy_rows(ctx_, local_, kvw, qkv_rot_ + H_ * d_, W, static_cast<int64_t>(N), kvw);
  Request gather = sp_->iall_gather(local_, xchg_, N * kvw);
  rope_forward(ctx_, qkv_rot_, W, B_, T_, H_, first, rope_);  // overlaps the gather
  gather->wait();
  // Rank-major (W, B, T, kvw) -> (B, (rank+1)*T, kvw), keeping chunks 0..rank.
  const size_t Tk = static_cast<size_t>(rank_ + 1) * T_;
  for (int u = 0; u <= rank_; ++u)
    for (int b = 0; b < B_; ++b)
      copy_floats(ctx_, kv_ + (b * Tk + static_cast<size_t>(u) * T_) * kvw,
                  xchg_ + (static_cast<size_t>(u) * B_ + b) * chunk, static_cast<int64_t>(chunk));
  softmax_attention_forward(ctx_, dims(), o_, out_width(), lse_, q, W, kv_, kvw, kv_ + KVH_ * d_, kvw);
}

void SoftmaxAttentionCore::backward(float* dqkv, const float* dout) {
  LT_CHECK(pos_offset_ >= 0, "[SoftmaxAttentionCore::backward] called before forward: nothing saved");
  const int W = qkv_width(), first = pos_offset_ + rank_ * T_;
  float* dq = dqkv;
  float* dk = dq + H_ * d_;
  if (sp_) {
    backward_sp(dqkv, dout);
  } else {
    const float* q = qkv_rot_;
    const float* k = q + H_ * d_;
    const float* v = k + KVH_ * d_;
    float* dv = dk + KVH_ * d_;
    softmax_attention_backward(ctx_, dims(), dq, W, dk, W, dv, W, dout, out_width(), q, W, k, W, v, W, o_,
                               out_width(), lse_);
    rope_backward(ctx_, dq, W, B_, T_, H_, first, rope_);
  }
  rope_backward(ctx_, dk, W, B_, T_, KVH_, first, rope_);
}

void SoftmaxAttentionCore::backward_sp(float* dqkv, const float* dout) {
  const int W = qkv_width(), kvw = 2 * KVH_ * d_;
  const size_t N = static_cast<size_t>(B_) * T_, chunk = static_cast<size_t>(T_) * kvw;
  const size_t Tk = static_cast<size_t>(rank_ + 1) * T_;
  softmax_attention_backward(ctx_, dims(), dqkv, W, dkv_, kvw, dkv_ + KVH_ * d_, kvw, dout, out_width(), qkv_rot_, W,
                             kv_, kvw, kv_ + KVH_ * d_, kvw, o_, out_width(), lse_);
  // (B, (rank+1)*T, kvw) -> rank-major by owner (W, B, T, kvw); later chunks get zeros.
  for (int u = 0; u < W_; ++u)
    for (int b = 0; b < B_; ++b) {
      float* dst = xchg_ + (static_cast<size_t>(u) * B_ + b) * chunk;
      if (u <= rank_)
        copy_floats(ctx_, dst, dkv_ + (b * Tk + static_cast<size_t>(u) * T_) * kvw, static_cast<int64_t>(chunk));
      else
        zero_floats(ctx_, dst, static_cast<int64_t>(chunk));
    }
  Request scatter = sp_->ireduce_scatter(xchg_, local_, N * kvw);
  rope_backward(ctx_, dqkv, W, B_, T_, H_, pos_offset_ + rank_ * T_, rope_);  // dq, overlaps the reduce-scatter
  scatter->wait();
  copy_rows(ctx_, dqkv + H_ * d_, W, local_, kvw, static_cast<int64_t>(N), kvw);
}

}  // namespace lintrain
