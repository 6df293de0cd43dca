// Cuts one block of device memory into the named float buffers of a layer
// or model: each buffer is asked for with its size, then the block is
// allocated once (zero-filled, 64-byte aligned pieces) and every pointer set.
// A training step then allocates nothing; the block's bytes are what the
// owner reports.
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

#include "runtime/arena.h"
#include "runtime/tensor.h"

namespace lintrain {

class BufferPlan {
 public:
  // *where is set by allocate(); a size of 0 leaves it null.
  void add(float** where, size_t floats) {
    pieces_.push_back({where, floats});
    total_ += arena_round(floats * sizeof(float)) / sizeof(float);
  }
  Tensor allocate(Device device) {
    Tensor block = Tensor::zeros({static_cast<int64_t>(total_)}, DType::F32, device);
    float* p = static_cast<float*>(block.raw());
    for (const auto& piece : pieces_) {
      *piece.first = piece.second > 0 ? p : nullptr;
      p += arena_round(piece.second * sizeof(float)) / sizeof(float);
    }
    return block;
  }

 private:
  std::vector<std::pair<float**, size_t>> pieces_;
  size_t total_ = 0;
};

}  // namespace lintrain
