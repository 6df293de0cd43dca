#include "runtime/arena.h"

#include "runtime/error.h"

namespace lintrain {

void Arena::reserve(size_t bytes) {
  bytes = arena_round(bytes);
  if (bytes <= capacity()) return;
  LT_CHECK(used_ == 0, "[arena] cannot grow while ", used_, " bytes are taken");
  storage_ = Storage::allocate(bytes, device_);
}

void* Arena::take(size_t bytes, const char* op) {
  const size_t need = arena_round(bytes);
  if (used_ + need > capacity())
    throw Error(str_cat("[", op, "] needs ", need, " bytes of scratch but the arena has ", capacity() - used_,
                        " of ", capacity(), " left: its owner reserved too little (a sizing bug, please report it)"));
  void* p = static_cast<char*>(storage_->data()) + used_;
  used_ += need;
  if (used_ > high_water_) high_water_ = used_;
  return p;
}

}  // namespace lintrain
