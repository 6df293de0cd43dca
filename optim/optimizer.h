// The optimizer interface: one update of the flat parameter buffer from the
// flat gradient buffer. State lives in flat buffers of the same layout so it
// can be sharded, checkpointed and restored exactly.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "runtime/config/config.h"
#include "runtime/param_table.h"

namespace lintrain {

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // One update with learning rate lr (the schedule's value for this step).
  virtual void step(FlatBuffer& params, const FlatBuffer& grads, double lr) = 0;
  virtual const char* name() const = 0;
  // Bytes of optimizer state (for the memory report).
  virtual size_t state_bytes() const = 0;
  // Named state buffers (e.g. "exp_avg", "exp_avg_sq") for checkpoints.
  virtual std::vector<std::pair<std::string, FlatBuffer*>> state_buffers() = 0;
  virtual int64_t step_count() const = 0;
  virtual void set_step_count(int64_t t) = 0;
};

std::unique_ptr<Optimizer> make_optimizer(const OptimConfig& cfg, const ParamTable& table);

// Global L2 norm of the gradient buffer (double accumulation, fixed order).
double grad_global_norm(const FlatBuffer& grads);
// Scales grads by max_norm / norm when norm > max_norm (max_norm > 0); returns the
// scale applied (1 when not clipped).
double clip_grad_norm(FlatBuffer& grads, double norm, double max_norm);

}  // namespace lintrain
