#include "optim/optimizer_state.h"

namespace lintrain {

void add_optimizer_state(Optimizer& opt, RunState& state, const std::string& part, const std::string& prefix) {
  for (const StateTensor& t : opt.state_tensors()) state.add(part, prefix + t.name, DType::F32, t.shape, t.data, t.device);
  for (const StateWord& w : opt.state_words()) state.add_scalar(part, prefix + w.name, w.value);
  state.set_metadata(part, prefix + "name", opt.name());
}

}  // namespace lintrain
