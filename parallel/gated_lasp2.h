// Gated LASP-2: the state exchange of one gated-linear-attention layer (gla)
// on SP rank j of W (docs/gated_linear_attention.md). Chunk j maps the state
// entering it to S_out = diag(exp(ld_j)) S_in + M_j, ld_j (B, H, d) its summed
// log gates: an affine map whose linear part is diagonal. Per step the layer
// does exactly two collectives, both AllGathers whose size does not depend on
// the sequence length:
//
//   forward   send [M_j | ld_j]  (B H (d*d + d) floats)   receive every rank's
//             P_j   = fold of the maps of chunks 0..j-1 from the initial state (or 0)
//             S_out = the same fold over 0..j                    (state leaving it)
//   backward  send dP_j = dL/dP_j from chunk j's own outputs (B H d d floats)
//             G_j = dL/d(S_out of chunk j) = fold of dP_u, u = W-1 .. j+1, through
//                   the gathered diagonals exp(ld_u), from dL/d(final state) (or 0)
//
// Usage with overlap (LinearAttentionCore does this for gla):
//   gla_chunk_state(ctx, ex.local_map(), ex.local_log_decay(), ...);  ex.begin_forward();
//   ... intra-chunk kernel ...                                       ex.end_forward(P, S_out);
//   gla_prefix_state_grad(ctx, ex.local_grad(), ...);                ex.begin_backward();
//   ... intra-chunk backward from P ...                              ex.end_backward(G);
// Between begin_* and end_* the gather is in flight: the send buffer must not
// be written. Every rank of the group makes the same calls in the same order
// with the same (B, H, d). The folds run in double, in rank order: every rank
// composes bit-identical prefixes.
#pragma once

#include <cstddef>

#include "parallel/communicator.h"
#include "runtime/context.h"

namespace lintrain {

class GatedLasp2Exchange {
 public:
  // comm: the SP group (not owned, outlives this); its rank is the chunk
  // index. ctx: where the folds run and the buffers live (comm->device()).
  // Owns (W + 1) B H (d*d + d) + (W + 1) B H d*d floats.
  GatedLasp2Exchange(const Context& ctx, Communicator* comm, int B, int H, int d);
  ~GatedLasp2Exchange();
  GatedLasp2Exchange(const GatedLasp2Exchange&) = delete;
  GatedLasp2Exchange& operator=(const GatedLasp2Exchange&) = delete;

  // Forward send buffer: M_j (B, H, d, d) then ld_j (B, H, d).
  float* local_map() { return send_map_; }
  float* local_log_decay() { return send_map_ + state_floats_; }
  // Backward send buffer: dP_j (B, H, d, d).
  float* local_grad() { return send_grad_; }

  // All states (B, H, d, d), assigned. state_in: the state entering the whole
  // sequence (chunk 0), the same on every rank, nullptr = 0; state_final: the
  // state leaving the whole sequence (chunk W-1), nullptr = not wanted.
  void begin_forward();
  void end_forward(float* P, float* S_out, const float* state_in = nullptr, float* state_final = nullptr);
  // G = dL/d(S_out of this chunk). dstate_final: dL/d(state_final), the same on
  // every rank, nullptr = 0; dstate_in: dL/d(state_in), nullptr = not wanted.
  // Needs this step's forward gather.
  void begin_backward();
  void end_backward(float* G, const float* dstate_final = nullptr, float* dstate_in = nullptr);

  int rank() const { return rank_; }
  int size() const { return size_; }
  size_t state_floats() const { return state_floats_; }  // B H d d
  // Floats each rank sends per step: forward B H (d*d + d), backward B H d d.
  size_t forward_send_floats() const { return map_floats_; }
  size_t backward_send_floats() const { return state_floats_; }
  size_t buffer_bytes() const { return buffers_.nbytes(); }

 private:
  enum class Phase { idle, forward, backward };
  void begin(Phase phase, const char* who);
  void end(Phase phase, const char* who);

  Context ctx_;
  Communicator* comm_;
  int rank_, size_, B_, H_, d_;
  size_t state_floats_ = 0, map_floats_ = 0;
  Tensor buffers_;
  float *send_map_ = nullptr, *recv_map_ = nullptr;    // (B H (dd + d)), (W, B H (dd + d))
  float *send_grad_ = nullptr, *recv_grad_ = nullptr;  // (B H dd), (W, B H dd)
  Request pending_;
  Phase phase_ = Phase::idle;
  bool have_maps_ = false;  // the forward gather of this step has landed in recv_map_
};

}  // namespace lintrain
