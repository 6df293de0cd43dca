#include "launch/evaluation.h"

#include "launch/stop_signals.h"

namespace lintrain {

void take_chunk(const Batch& full, int sp_rank, int chunk, Batch& out) {
  out.resize(full.B, chunk);
  for (int b = 0; b < full.B; ++b)
    for (int t = 0; t < chunk; ++t) {
      const size_t src = static_cast<size_t>(b) * full.T + static_cast<size_t>(sp_rank) * chunk + t;
      out.inputs[static_cast<size_t>(b) * chunk + t] = full.inputs[src];
      out.targets[static_cast<size_t>(b) * chunk + t] = full.targets[src];
    }
}

bool evaluate(LinearLlama& model, DataLoader& valid, int batches, const ProcessGrid& grid, Totals& total) {
  Batch full, mine;
  valid.reset();  // every evaluation sees the same validation windows
  for (int i = 0; i < batches; ++i) {
    double stop = stop_signal_received() != 0;
    if (grid.world_size() > 1) grid.world().all_reduce_f64(&stop, 1);
    if (stop > 0) return false;
    valid.next(full);
    take_chunk(full, grid.sp_rank(), model.seq_len(), mine);
    total.add(model.forward_loss(mine.inputs.data(), mine.targets.data()));
  }
  total.all_reduce(grid.world());
  return true;
}

}  // namespace lintrain
