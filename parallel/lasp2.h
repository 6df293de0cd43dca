// LASP-2 state exchange of one linear-attention layer on SP rank j of W
// (docs/lasp2.md). The sequence of T tokens is cut into W contiguous
// chunks of C = T / W; rank j = comm->rank() holds chunk j. Per step the layer
// does exactly two collectives, both AllGathers of one (B, H, d, d) fp32 state
// per rank, whatever T is:
//
//   forward   send M_j  = (Lk * K_j)^T V_j         receive all M_u
//             P_j = sum_{u<j} lambda_h^(C (j-1-u)) M_u      (state entering chunk j)
//   backward  send dP_j = (Lq * Q_j)^T dO_j        receive all dP_u
//             G_j = sum_{u>j} lambda_h^(C (u-1-j)) dP_u     (dL/dM_j from later chunks)
//
// Usage with overlap (LinearAttentionCore does this):
//   lasp2_chunk_state(ctx, ex.local_state(), ...);   ex.begin_forward();
//   ... intra-chunk kernel ...                        ex.end_forward(P);
//   lasp2_prefix_state_grad(ctx, ex.local_state(), ...); ex.begin_backward();
//   ... intra-chunk backward ...                      ex.end_backward(G);
// Between begin_* and end_* the gather is in flight: local_state() must not be
// written. Every rank of the group must make the same calls in the same order
// with the same (B, H, d, C) and decays.
//
// The merges are the ops lasp2_prefix_states / lasp2_suffix_states
// (runtime/ops.h): weights exp(n log lambda) in double, so lambda^n underflows
// to 0 for lambda near 0 (a chunk sees only its neighbour's state, which is
// right) and never yields NaN; each element of P and G is summed in double
// over the W terms in rank order (deterministic) and stored in fp32.
#pragma once

#include <cstddef>
#include <vector>

#include "parallel/communicator.h"
#include "runtime/context.h"

namespace lintrain {

class Lasp2StateExchange {
 public:
  // comm: the SP group, not owned, must outlive this object; its rank is the
  // chunk index. B batch, H query heads, d head dim, C tokens per chunk (equal
  // on every rank), decay (H) lambda_h in (0, 1]. ctx: where the merges run
  // and where the buffers live, which must be where comm's collectives take
  // them (comm->device()); its arena must outlive this object and hold
  // merge_scratch_bytes() when end_* runs.
  // Owns (W + 1) * B * H * d * d floats (send and receive buffers) and the
  // H decays, on ctx.device.
  Lasp2StateExchange(const Context& ctx, Communicator* comm, int B, int H, int d, int C,
                     std::vector<float> decay);
  ~Lasp2StateExchange();
  Lasp2StateExchange(const Lasp2StateExchange&) = delete;
  Lasp2StateExchange& operator=(const Lasp2StateExchange&) = delete;

  // The (B, H, d, d) send buffer: write M_j (forward) or dP_j (backward) here.
  float* local_state() { return send_; }
  // Starts the AllGather of local_state() (B*H*d*d floats from this rank).
  void begin_forward();
  void begin_backward();
  // Waits for it; P (B, H, d, d) = prefix, G (B, H, d, d) = suffix (assigned).
  void end_forward(float* P);
  void end_backward(float* G);

  int rank() const { return rank_; }
  int size() const { return size_; }
  size_t state_floats() const { return state_floats_; }
  size_t buffer_bytes() const { return buffers_.nbytes() + decay_dev_.nbytes(); }
  // Scratch the merges of end_forward / end_backward take from ctx's arena.
  size_t merge_scratch_bytes() const;

 private:
  enum class Phase { idle, forward, backward };
  void begin(Phase phase, const char* who);
  void end(Phase phase, const char* who);

  Context ctx_;
  Communicator* comm_;
  int rank_, size_, B_, H_, d_, C_;
  std::vector<float> decay_;  // host copy: checked at construction
  Tensor decay_dev_;          // (H) on ctx.device: what the merges read
  size_t state_floats_ = 0;   // B * H * d * d
  Tensor buffers_;            // send_ and recv_, on ctx.device
  float* send_ = nullptr;     // (B, H, d, d)
  float* recv_ = nullptr;     // (W, B, H, d, d)
  Request pending_;
  Phase phase_ = Phase::idle;
};

}  // namespace lintrain
