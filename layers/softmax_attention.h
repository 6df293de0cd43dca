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
//
// Sequence parallelism (LASP-2H): pass the SP group as `sp`. Rank j = sp->rank()
// of W = sp->size() then holds chunk j of a sequence of W*T tokens (T = this
// rank's chunk length, equal on every rank): its token t is the sequence's
// token j*T + t, at absolute position pos_offset + j*T + t (pos_offset = the
// position of the WHOLE sequence's first token, 0 in training; the same value
// on every rank). Per step:
//   forward   RoPE on the local q, k; AllGather of the rotated k|v rows:
//             2*B*T*KVH*d floats sent per rank (4x that in bytes), received
//             rank-major (W, B, T, 2*KVH*d) and rearranged to (B, W*T, ...);
//             causal attention of the local queries (q_offset = j*T) against
//             gathered keys 0 .. (j+1)*T - 1.
//   backward  dq locally; dk, dv for all (j+1)*T keys this rank saw, laid out
//             (W, B, T, 2*KVH*d) by owner (zeros for later chunks) and
//             reduce-scattered: W*2*B*T*KVH*d floats sent, each owner
//             receives the sum of its chunk's dk|dv over all ranks.
// This volume grows with T, unlike LASP-2's (expected: softmax attention needs
// every earlier key). Saved under SP in addition: the gathered k|v of chunks
// 0..j, 4 * B*(j+1)*T*2*KVH*d bytes; scratch: the exchange buffer
// (W*B*T*2*KVH*d floats), the local k|v send/receive buffer and dk|dv of the
// seen keys. With sp == nullptr or sp->size() == 1 the core is the single-rank
// core (no collectives). Every rank of the group must call forward and
// backward together.
#pragma once

#include <cstddef>
#include <vector>

#include "runtime/config/config.h"
#include "runtime/ops.h"  // Context, AttentionDims
#include "runtime/rope_table.h"

namespace lintrain {

class Communicator;

class SoftmaxAttentionCore {
 public:
  // Throws lintrain::Error if the heads do not divide hidden_size, kv heads do
  // not divide heads, head_dim is odd, or B, T < 1. ctx: where the kernels
  // run; its arena (not owned, must outlive the core) is reserved here for
  // scratch_bytes(). sp: the SP group (not owned, must outlive the core) or
  // nullptr; T is then the chunk length.
  SoftmaxAttentionCore(const Context& ctx, const ModelConfig& cfg, int B, int T, Communicator* sp = nullptr);

  // out = attention(RoPE(q), RoPE(k), v) for the B*T rows of qkv. Saves what
  // the backward needs (overwriting the previous forward's state).
  void forward(float* out, const float* qkv, int pos_offset = 0);
  // dqkv = d(sum dout .* out)/dqkv of the last forward, assigned (=) in full;
  // dq and dk are rotated back through RoPE. Throws if no forward ran.
  void backward(float* dqkv, const float* dout);

  size_t saved_bytes() const;
  // Scratch used only under SP (exchange buffers and dk|dv of the seen keys).
  size_t workspace_bytes() const;
  // The most scratch one of its kernels takes from ctx's arena.
  size_t scratch_bytes() const;
  int qkv_width() const { return (H_ + 2 * KVH_) * d_; }
  int out_width() const { return H_ * d_; }
  int sp_size() const { return W_; }
  int sp_rank() const { return rank_; }

 private:
  AttentionDims dims() const;
  void forward_sp(const float* q, int pos_offset);
  void backward_sp(float* dqkv, const float* dout);

  Context ctx_;
  int B_, T_, H_, KVH_, d_;
  double theta_;
  int pos_offset_ = -1;       // of the saved forward; -1 = none yet
  RopeTable rope_;            // positions [pos_offset_, pos_offset_ + T), on ctx_.device
  // Every buffer below is a piece of buffers_, one block on ctx_.device.
  Tensor buffers_;
  size_t saved_floats_ = 0, workspace_floats_ = 0;
  float* qkv_rot_ = nullptr;  // (B*T, W)
  float* o_ = nullptr;        // (B*T, H*d)
  float* lse_ = nullptr;      // (B, H, T)
  // LASP-2H (only when W_ > 1); kv rows are [k (KVH*d) | v (KVH*d)].
  Communicator* sp_ = nullptr;
  int W_ = 1, rank_ = 0;
  float* kv_ = nullptr;     // saved (B, (rank+1)*T, 2*KVH*d) gathered, rearranged
  float* dkv_ = nullptr;    // scratch (B, (rank+1)*T, 2*KVH*d)
  float* xchg_ = nullptr;   // scratch (W, B, T, 2*KVH*d): gather receive / reduce-scatter send
  float* local_ = nullptr;  // scratch (B, T, 2*KVH*d): gather send / reduce-scatter receive
};

}  // namespace lintrain
