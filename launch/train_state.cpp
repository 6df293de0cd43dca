#include "launch/train_state.h"

#include <algorithm>
#include <cstdlib>
#include <map>

#include "layers/model.h"
#include "optim/optimizer.h"
#include "optim/optimizer_state.h"
#include "parallel/process_grid.h"
#include "runtime/error.h"

namespace lintrain {
namespace {

constexpr const char* kTrainerFormat = "lintrain-trainer-state/1";

bool starts_with(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }

// Keys that only say how a run is watched, saved or where it runs: a resume
// may change them freely.
bool is_bookkeeping(const std::string& key) {
  static const char* const kKeys[] = {"run.name", "run.out_dir", "run.threads", "train.log_every",
                                      "train.eval_every", "train.eval_batches", "train.export_every",
                                      "train.max_bad_steps", "resume"};
  for (const char* k : kKeys)
    if (key == k) return true;
  return starts_with(key, "checkpoint.");
}

bool is_refused(const std::string& key) {
  return starts_with(key, "model.") || key == "optim.name" || key == "optim.groups" || key == "run.seed" ||
         key == "data.kind";
}

}  // namespace

TrainState::TrainState(const RunConfig& cfg, const ProcessGrid& grid, LinearLlama& model, Optimizer& optimizer,
                       DataLoader& train_data)
    : cfg_(cfg), grid_(grid), model_(model), optimizer_(optimizer), train_data_(train_data) {}

void TrainState::bind(bool with_fp8) {
  state_ = RunState();
  const FlatBuffer& params = model_.params();
  for (const TensorView& v : model_.table().views()) state_.add("model", v.name, DType::F32, v.shape, params.at(v), params.device());
  state_.set_metadata("model", "format", "pt");
  state_.set_metadata("model", "producer", "lintrain");
  state_.set_metadata("model", "layer_pattern", model_.config().layer_pattern);

  add_optimizer_state(optimizer_, state_, "trainer", "optimizer/");
  state_.add_scalar("trainer", "train/step", &counters.step);
  state_.add_scalar("trainer", "train/tokens_seen", &counters.tokens_seen);
  state_.add_scalar("trainer", "train/bad_steps_in_row", &counters.bad_steps_in_row);
  state_.add_scalar("trainer", "train/bad_steps_total", &counters.bad_steps_total);
  state_.add_scalar("trainer", "data/train/sequences", &data_.sequences);
  state_.add_scalar("trainer", "data/train/stream_seed", &data_.stream_seed);
  if (with_fp8) model_.add_fp8_state(state_, "trainer");
  state_.set_metadata("trainer", "format", kTrainerFormat);
  state_.set_metadata("trainer", "config", config_to_yaml(cfg_));
  state_.set_metadata("trainer", "layout", str_cat("data=", grid_.dp_size(), " sequence=", grid_.sp_size()));
}

const RunState& TrainState::snapshot() {
  data_ = train_data_.state();
  bind();
  return state_;
}

std::vector<std::string> TrainState::restore(const OpenedCheckpoint& ckpt) {
  const SafeTensorFile& trainer = ckpt.part("trainer");
  const auto& meta = trainer.metadata();
  const auto fmt = meta.find("format");
  if (fmt == meta.end() || fmt->second != kTrainerFormat)
    throw IoError(str_cat("[checkpoint] ", ckpt.where, ": trainer.safetensors is not a lintrain trainer state (",
                          kTrainerFormat, ")"));
  const auto saved = meta.find("config");
  if (saved == meta.end())
    throw IoError(str_cat("[checkpoint] ", ckpt.where, ": trainer.safetensors holds no run file (metadata 'config')"));
  std::vector<std::string> notes = check_resume_changes(saved->second, cfg_, ckpt.where);
  // An FP8 run resuming a checkpoint without FP8 state (an FP32/BF16 run's,
  // or another recipe's): its scaling starts fresh from here.
  bind();
  const bool wants_fp8 = std::any_of(state_.entries().begin(), state_.entries().end(),
                                     [](const StateEntry& e) { return starts_with(e.name, "fp8/"); });
  const bool has_fp8 = std::any_of(trainer.tensors().begin(), trainer.tensors().end(),
                                   [](const SafeTensor& t) { return starts_with(t.name, "fp8/"); });
  if (wants_fp8 && !has_fp8) {
    bind(/*with_fp8=*/false);
    notes.push_back("the checkpoint holds no FP8 scaling state (it was written without precision.fp8 or with "
                    "another recipe): the FP8 scales and amax histories start fresh");
  }
  try {
    restore_run_state(ckpt, state_);
  } catch (const StateMismatchError& e) {
    // The optimizer's settings decide its state's tensors (optim.no_decay
    // its groups, whose names they carry; a rank their shapes): a changed
    // one is the cause to name, before the tensors it moved.
    std::string changed;
    for (const ConfigChange& c : config_changes(saved->second, config_to_yaml(cfg_)))
      if (starts_with(c.key, "optim."))
        changed += str_cat(changed.empty() ? "" : ", ", c.key, " (", c.before, " -> ", c.after, ")");
    if (changed.empty()) throw;
    throw ConfigError(str_cat("resume: ", ckpt.where, " does not fit this run's optimizer state because this run "
                              "changes ", changed, ", which decides the state's tensors: resume with the "
                              "checkpoint's values (its config.yaml), or start fresh with resume: none (the state "
                              "differs in: ", e.differences(), ")"));
  }
  train_data_.restore(data_);  // checks the stream belongs to this data and seed
  return notes;
}

std::vector<std::string> check_resume_changes(const std::string& saved_yaml, const RunConfig& now,
                                              const std::string& where) {
  const std::vector<ConfigChange> changes = config_changes(saved_yaml, config_to_yaml(now));
  std::map<std::string, std::string> before;
  std::vector<std::string> refused, notes;
  for (const ConfigChange& c : changes) {
    before[c.key] = c.before;
    if (is_bookkeeping(c.key)) continue;
    const std::string line = str_cat(c.key, ": ", c.before, " -> ", c.after);
    if (is_refused(c.key)) refused.push_back(line);
  }
  if (!refused.empty()) {
    std::string msg = str_cat("resume: ", where, " was written by a run that differs in settings a checkpoint "
                              "cannot carry over: ");
    for (size_t i = 0; i < refused.size(); ++i) msg += str_cat(i ? "; " : "", refused[i]);
    throw ConfigError(msg + ". Use the checkpoint's settings (its config.yaml), or start a new run with "
                            "resume: none or another checkpoint.dir");
  }
  // The value a key had in the saved run: its `before` text when it changed.
  auto saved_int = [&](const char* key, int current) {
    const auto it = before.find(key);
    return it == before.end() ? static_cast<long long>(current) : std::atoll(it->second.c_str());
  };
  const long long saved_batch = saved_int("train.micro_batch", now.train.micro_batch) *
                                saved_int("train.grad_accum", now.train.grad_accum) *
                                saved_int("parallel.data", now.parallel.data);
  const long long batch = static_cast<long long>(now.train.micro_batch) * now.train.grad_accum * now.parallel.data;
  const bool layout_changed = before.count("parallel.data") || before.count("parallel.sequence");
  if (saved_batch != batch)
    notes.push_back(str_cat("the global batch changes from ", saved_batch, " to ", batch,
                            " sequences (train.micro_batch x train.grad_accum x parallel.data): the data continues "
                            "where it stopped, but this is not the run the checkpoint came from"));
  else if (layout_changed)
    notes.push_back(str_cat("the layout changes from DP ", saved_int("parallel.data", now.parallel.data), " x SP ",
                            saved_int("parallel.sequence", now.parallel.sequence), " to DP ", now.parallel.data,
                            " x SP ", now.parallel.sequence,
                            " with the same global batch: losses continue up to floating-point reassociation"));
  for (const ConfigChange& c : changes) {
    if (is_bookkeeping(c.key) || starts_with(c.key, "parallel.") || c.key == "train.micro_batch" ||
        c.key == "train.grad_accum")
      continue;
    if (c.key == "train.steps")
      notes.push_back(str_cat("train.steps changes from ", c.before, " to ", c.after,
                              ": the learning-rate schedule is recomputed for the new length"));
    else
      notes.push_back(str_cat(c.key, " changes from ", c.before, " to ", c.after, " (the checkpoint's run had ",
                              c.before, ")"));
  }
  return notes;
}

}  // namespace lintrain
