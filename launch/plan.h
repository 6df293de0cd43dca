// `lintrain plan RUN.yaml`: what one rank of a run holds and moves, without
// running it: parameters, gradients, optimizer state per group, activations
// by layer kind, the bytes each collective sends per step, FLOPs per token,
// whether it fits a given memory, and the smallest sequence-parallel size
// that does.
//
// Where the figures come from (so they cannot drift from what the run
// allocates):
//   - parameters and gradients: make_param_table, the model's own layout
//     (FlatBuffer bytes, padding included);
//   - optimizer state: plan_optimizer_memory, the optimizers' state layouts;
//   - activations: the pieces LinearLlama and its attention cores cut their
//     BufferPlans into (each rounded as BufferPlan rounds it), the cores'
//     saved and workspace bytes and the ops' *_scratch_bytes for the arena.
//     This is a mirror of the constructors' layout; tests/unit/test_plan.cpp
//     checks it byte for byte against the allocated objects, so a change to
//     a constructor that is not made here fails that test;
//   - collectives: LASP-2 all-gathers B*H*d*d floats per linear layer each
//     way, LASP-2H all-gathers K|V of the local chunk and reduce-scatters
//     their gradient, the gradient reducer all-reduces the whole gradient
//     buffer once per step. Counted as the communicators count (CommStats:
//     the send buffer's bytes; a reduce-scatter's send buffer is W chunks),
//     checked against the counters after a real step in test_plan.
// The rank planned is the last SP rank: its softmax layers see every key, so
// it holds the most.
#pragma once

#include <string>
#include <vector>

#include "optim/param_groups.h"
#include "runtime/config/config.h"

namespace lintrain {

struct PlanActivations {
  // Bytes of one rank, by where they serve (see plan.cpp for the pieces).
  double linear_attention = 0;   // 'L' layers: attention sub-block inputs/outputs and the core (LASP-2 buffers)
  double softmax_attention = 0;  // 'S' layers: the same and LASP-2H's gathered K|V
  double mlp = 0;                // every layer's MLP sub-block
  double head = 0;               // final norm, logits chunk, loss rows
  double other = 0;              // backward workspaces shared by all layers, token ids, ops' scratch arena
  double data = 0;               // the trainer's loaded micro-batches (inputs and targets of grad_accum)
  double model_total() const { return linear_attention + softmax_attention + mlp + head + other; }
  double total() const { return model_total() + data; }
};

struct PlanCollective {
  std::string what;      // "LASP-2 all-gather (per linear layer)", ...
  int layers = 0;        // layers it runs in (0 for the gradient all-reduce)
  double forward = 0;    // bytes per step over all its layers and micro-batches
  double backward = 0;
};

struct RunPlan {
  int sp = 1, dp = 1;
  int64_t params = 0;           // parameter count (no padding)
  double param_bytes = 0;       // f32 master weights (FlatBuffer, with padding)
  double grad_bytes = 0;
  double compute_copy_bytes = 0;  // bf16 compute: the rounded copy of the weights
  OptimizerMemory optimizer;
  double optimizer_bytes = 0;
  PlanActivations activations;
  // precision.fp8: the GEMMs in FP8 and the host bytes of their scales and
  // amax histories. FP8 is emulated (f32 copies of the quantised operands, in
  // the ops' scratch arena of `activations.other`), so it saves nothing.
  int fp8_gemms = 0;
  double fp8_state_bytes = 0;
  double checkpoint_staging = 0;
  std::vector<PlanCollective> collectives;
  double flops_per_token_matmul = 0;     // 6 x matmul parameters (forward + backward)
  double flops_per_token_attention = 0;  // the attention cores, forward + backward
  double total() const {
    return param_bytes + grad_bytes + compute_copy_bytes + optimizer_bytes + activations.total() + checkpoint_staging +
           fp8_state_bytes;
  }
};

// Plans cfg at sequence-parallel size sp and data-parallel size dp (sp must
// divide data.seq_len). Allocates nothing. Throws ConfigError for an sp that
// does not divide the sequence.
RunPlan plan_run(const RunConfig& cfg, int sp, int dp);

struct PlanOptions {
  double device_memory = -1;  // bytes per rank; < 0: this machine's RAM (cpu) shared by the node's ranks
  int nodes = 0, gpus_per_node = 0;  // 0: the world of parallel.sequence x parallel.data
};

// The printed report of `lintrain plan` (see README "Planning a run").
std::string format_plan(const RunConfig& cfg, const PlanOptions& opts);

// "80GiB", "512MiB", "1.5TB", "1000000" (bytes) -> bytes; throws UsageError.
double parse_memory_size(const std::string& text);

}  // namespace lintrain
