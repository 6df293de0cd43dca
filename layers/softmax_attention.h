// The core of a softmax-attention layer ("S" in ModelConfig.layer_pattern):
// RoPE on q and k, then causal grouped-query softmax attention. The q/k/v and
// output projections belong to the model (one fused qkv GEMM before, o_proj
// after); this class does what lies between them and owns what its backward
// needs.
//
// Shapes (N = B * T token rows, H = num_attention_heads,
// KVH = kv_heads(), d = head_dim(), W = (H + 2*KVH) * d):
//   qkv   (N, W)      each row [q (H*d) | k (KVH*d) | v (KVH*d)], heads contiguous
//   out   (N, H*d)    attention output per query head, before o_proj
//   dqkv  (N, W)      gradient of qkv, same layout
//   dout  (N, H*d)
// Token t of sequence b is row b*T + t, at absolute position pos_offset + t
// (RoPE uses absolute positions; attention is causal within the T tokens).
//
// Saved between forward and backward (owned here, allocated once in the
// constructor; saved_bytes() reports it):
//   qkv_rot  (N, W)      copy of qkv with q and k rotated; v as given
//   o        (N, H*d)    the output, for rowsum(dout .* o) in the backward
//   lse      (B, H, T)   row log-sum-exp of the scores
//   RoPE table (T, d)    cos/sin for positions pos_offset .. pos_offset+T-1
// Total 4 * (N*(2H + 2KVH)*d + B*H*T + T*d) bytes. The T x T probabilities are
// never stored: the backward recomputes them blockwise from qkv_rot and lse.
#pragma once

#include <cstddef>
#include <vector>

#include "runtime/config/config.h"
#include "runtime/cpu/rope.h"
#include "runtime/cpu/softmax_attention.h"

namespace lintrain {

class SoftmaxAttentionCore {
 public:
  // Throws lintrain::Error if the heads do not divide hidden_size, kv heads do
  // not divide heads, head_dim is odd, or B, T < 1.
  SoftmaxAttentionCore(const ModelConfig& cfg, int B, int T);

  // out = attention(RoPE(q), RoPE(k), v) for the B*T rows of qkv. Saves what
  // the backward needs (overwriting the previous forward's state).
  void forward(float* out, const float* qkv, int pos_offset = 0);
  // dqkv = d(sum dout .* out)/dqkv of the last forward, assigned (=) in full;
  // dq and dk are rotated back through RoPE. Throws if no forward ran.
  void backward(float* dqkv, const float* dout);

  size_t saved_bytes() const;
  int qkv_width() const { return (H_ + 2 * KVH_) * d_; }
  int out_width() const { return H_ * d_; }

 private:
  AttentionDims dims() const;

  int B_, T_, H_, KVH_, d_;
  double theta_;
  int pos_offset_ = -1;       // of the saved forward; -1 = none yet
  RopeTable rope_;            // positions [pos_offset_, pos_offset_ + T)
  std::vector<float> qkv_rot_;  // (B*T, W)
  std::vector<float> o_;        // (B*T, H*d)
  std::vector<float> lse_;      // (B, H, T)
};

}  // namespace lintrain
