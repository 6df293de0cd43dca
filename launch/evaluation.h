// The trainer's evaluation pass and the sequence-parallel cut of a batch.
#pragma once

#include <algorithm>

#include "layers/model.h"
#include "parallel/communicator.h"
#include "parallel/process_grid.h"
#include "runtime/data/data_loader.h"

namespace lintrain {

// This rank's piece of a batch: SP rank j of W keeps tokens [j*C, (j+1)*C) of
// every sequence (C = T / W); the data-parallel split is the loader's.
void take_chunk(const Batch& full, int sp_rank, int chunk, Batch& out);

// Loss and accuracy sums over counted tokens, summed over ranks on demand.
struct Totals {
  double loss_sum = 0, count = 0, correct = 0;
  void add(const CrossEntropyStats& s) {
    loss_sum += s.loss_sum;
    count += static_cast<double>(s.count);
    correct += static_cast<double>(s.correct);
  }
  void all_reduce(Communicator& world) {
    double v[3] = {loss_sum, count, correct};
    world.all_reduce_f64(v, 3);
    loss_sum = v[0], count = v[1], correct = v[2];
  }
  double loss() const { return loss_sum / std::max(1.0, count); }
  double accuracy() const { return correct / std::max(1.0, count); }
};

// `batches` validation batches from the start of `valid` into `total`
// (summed over every rank). Stops early (returns false) when a stop signal
// reached any rank: a checkpoint and exit must not wait for a long
// evaluation. Every rank agrees on the batch it stops at (one small
// reduction per batch), so the collectives of the forward passes stay matched.
bool evaluate(LinearLlama& model, DataLoader& valid, int batches, const ProcessGrid& grid, Totals& total);

}  // namespace lintrain
