// A scratch arena: one block of memory on one device from which ops take
// their temporaries (partial sums, staging), so the training step allocates
// nothing. Sizes are known up front: each op that needs scratch says how much
// (`*_scratch_bytes`), the owner reserves the largest it will run, and a
// take beyond the reservation is an error, not a silent allocation.
//
// Use is stack-like: an op takes what it needs and gives it back before it
// returns (ScratchScope), so one reservation serves every op in turn.
#pragma once

#include <cstddef>
#include <memory>

#include "runtime/tensor.h"

namespace lintrain {

class Arena {
 public:
  explicit Arena(Device device = Device::CPU) : device_(device) {}

  // Makes at least `bytes` available (allocates only when growing, before
  // training starts; nothing may be taken while it grows).
  void reserve(size_t bytes);
  // `bytes` from the top, 64-byte aligned. Throws Error naming `op` when the
  // reservation is too small (a sizing bug: the owner reserved too little).
  void* take(size_t bytes, const char* op);
  size_t used() const { return used_; }
  size_t capacity() const { return storage_ ? storage_->nbytes() : 0; }
  size_t high_water() const { return high_water_; }
  Device device() const { return device_; }

 private:
  friend class ScratchScope;
  Device device_;
  std::shared_ptr<Storage> storage_;
  size_t used_ = 0, high_water_ = 0;
};

// Gives back everything taken from `arena` within its scope.
class ScratchScope {
 public:
  explicit ScratchScope(Arena& arena) : arena_(arena), mark_(arena.used_) {}
  ~ScratchScope() { arena_.used_ = mark_; }
  ScratchScope(const ScratchScope&) = delete;
  ScratchScope& operator=(const ScratchScope&) = delete;
  template <typename T>
  T* take(size_t count, const char* op) {
    return static_cast<T*>(arena_.take(count * sizeof(T), op));
  }

 private:
  Arena& arena_;
  size_t mark_;
};

constexpr size_t kArenaAlign = 64;
inline size_t arena_round(size_t bytes) { return (bytes + kArenaAlign - 1) / kArenaAlign * kArenaAlign; }

}  // namespace lintrain
