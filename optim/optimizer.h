// The optimizer interface: one update of the flat parameter buffer from the
// flat gradient buffer.
//
// A run's optimizer is a GroupedOptimizer (optim/param_groups.h): the rules of
// optim.groups split the tensors into parameter groups, and each group gets
// one instance of an update rule below (AdamW, Lion, GaLore, SPAM, FRUGAL)
// that touches only its group's tensors. Every rule keeps its f32 state in one
// flat buffer with a table of named views (moments, projectors, masks), and
// exposes that state and its integer words (step counters, RNG states) so a
// checkpoint can save it and a restore continues bit-identically.
//
// Every rule and the gradient norm run their loops as ops (runtime/ops.h) on
// the Context given at construction: the model's (LinearLlama::context()), so
// they run where its parameters and gradients live. The host-only parts (SVD
// and QR refreshes of GaLore and FRUGAL through LAPACK, SPAM's mask draws,
// FRUGAL's subspace choice) read and write host memory; every state buffer
// lives on the context's device, so on CUDA those steps are explicit, counted
// copies (runtime/host_staging.h) and nothing else leaves the GPU.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/config/config.h"
#include "runtime/context.h"
#include "runtime/param_table.h"
#include "runtime/rng.h"

namespace lintrain {

// A named f32 state tensor, owned by its optimizer ("galore/model.layers.0.mlp.up_proj.weight/exp_avg").
struct StateTensor {
  std::string name;
  Shape shape;
  float* data;  // on `device`
  int64_t numel;
  Device device = Device::CPU;
};

// A named 64-bit state word: a step counter or one word of an RNG state.
struct StateWord {
  std::string name;
  uint64_t* value;
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // One update with learning rate lr (the schedule's value for this step,
  // already multiplied by the group's lr_scale).
  virtual void step(FlatBuffer& params, const FlatBuffer& grads, double lr) = 0;
  virtual const char* name() const = 0;
  // Bytes of f32 optimizer state held (for the memory report).
  virtual size_t state_bytes() const = 0;
  // Every f32 state tensor and every state word. Writing them back (same names,
  // same shapes) restores the optimizer exactly.
  virtual std::vector<StateTensor> state_tensors() = 0;
  virtual std::vector<StateWord> state_words() = 0;
  // Optimizer steps taken so far.
  virtual int64_t step_count() const = 0;
};

// The tensors of one parameter group and the settings they share.
struct ParamGroup {
  std::string name;          // "galore", "adamw.no_decay": prefixes its state names
  std::string optimizer;     // adamw | lion | galore | spam | frugal
  std::vector<int> views;    // indices into the ParamTable, in table order
  double lr_scale = 1.0;
  double weight_decay = 0.0;
};

// One update rule: how to build it for a group, and how many f32 state values
// it would hold there without building it (the memory report of models that
// are never allocated).
struct UpdateRuleInfo {
  const char* name;
  std::unique_ptr<Optimizer> (*make)(const Context& ctx, const OptimConfig& cfg, const ParamGroup& group,
                                     const ParamTable& table, uint64_t seed);
  int64_t (*state_floats)(const OptimConfig& cfg, const ParamGroup& group, const ParamTable& table);
};

// The views of a state table as StateTensors, named "<view name>".
std::vector<StateTensor> state_tensors_of(const ParamTable& table, const FlatBuffer& buffer);

// An Rng kept as six plain words, so the words themselves are the state a
// checkpoint saves: load() before drawing, store() after.
struct RngWords {
  uint64_t w[6] = {0, 0, 0, 0, 0, 0};  // xoshiro state, spare normal's bits, has-spare flag
  explicit RngWords(uint64_t seed = 0) { store(Rng(seed)); }
  Rng load() const;
  void store(const Rng& rng);
  // Appends "<name>/0" .. "<name>/5".
  void expose(const std::string& name, std::vector<StateWord>& out);
};

// Every update rule, AdamW first. Throws ConfigError naming the valid names.
const std::vector<UpdateRuleInfo>& update_rules();
const UpdateRuleInfo& find_update_rule(const std::string& name);

// The run's optimizer: the parameter groups of cfg (optim.groups, or the
// defaults of optim.name) over `table`, each with its update rule, running its
// ops on `ctx` (copied; its arena, if any, must outlive the optimizer). `seed`
// seeds random subspaces (FRUGAL, randomized SVD).
std::unique_ptr<Optimizer> make_optimizer(const Context& ctx, const OptimConfig& cfg, const ParamTable& table,
                                          uint64_t seed = 0);

// Global L2 norm of the gradient buffer (the grad_norm_squared op: double
// accumulation, fixed order). ctx needs grad_norm_squared_scratch_bytes of
// scratch for grads.numel() (LinearLlama reserves it for its gradients).
double grad_global_norm(const Context& ctx, const FlatBuffer& grads);
// Scales grads by max_norm / norm when norm > max_norm (max_norm > 0); returns the
// scale applied (1 when not clipped).
double clip_grad_norm(const Context& ctx, FlatBuffer& grads, double norm, double max_norm);

}  // namespace lintrain
