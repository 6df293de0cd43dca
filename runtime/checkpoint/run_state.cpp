#include "runtime/checkpoint/run_state.h"

#include <algorithm>

#include "runtime/checkpoint/checksum.h"
#include "runtime/cpu/copy.h"
#include "runtime/error.h"

namespace lintrain {

void RunState::note_part(const std::string& part) {
  if (std::find(parts_.begin(), parts_.end(), part) == parts_.end()) parts_.push_back(part);
}

void RunState::add(const std::string& part, const std::string& name, DType dtype, const Shape& shape, void* data) {
  LT_CHECK(!part.empty() && !name.empty(), "[RunState] an entry needs a part and a name (got '", part, "', '",
           name, "')");
  LT_CHECK(find(part, name) == nullptr, "[RunState] entry '", name, "' added twice to part '", part, "'");
  StateEntry e{part, name, dtype, shape, data};
  LT_CHECK(data != nullptr || e.nbytes() == 0, "[RunState] entry '", name, "' has no data");
  entries_.push_back(std::move(e));
  note_part(part);
}

void RunState::add_scalar(const std::string& part, const std::string& name, int64_t* value) {
  add(part, name, DType::I64, {}, value);
}

void RunState::add_scalar(const std::string& part, const std::string& name, uint64_t* value) {
  add(part, name, DType::U64, {}, value);
}

void RunState::set_metadata(const std::string& part, const std::string& key, const std::string& value) {
  metadata_[part][key] = value;
  note_part(part);
}

const StateEntry* RunState::find(const std::string& part, const std::string& name) const {
  for (const StateEntry& e : entries_)
    if (e.part == part && e.name == name) return &e;
  return nullptr;
}

const std::map<std::string, std::string>& RunState::metadata(const std::string& part) const {
  static const std::map<std::string, std::string> kNone;
  const auto it = metadata_.find(part);
  return it == metadata_.end() ? kNone : it->second;
}

size_t RunState::nbytes() const {
  size_t n = 0;
  for (const StateEntry& e : entries_) n += e.nbytes();
  return n;
}

uint64_t RunState::digest() const {
  Xxh3 h;
  for (const StateEntry& e : entries_) h.update(e.data, e.nbytes());
  return h.digest();
}

void StagedState::stage(const RunState& state) {
  staged_ = false;
  // Entries 64-byte aligned in the buffer, in entry order.
  auto padded = [](size_t n) { return (n + 63) & ~size_t{63}; };
  size_t total = 0;
  for (const StateEntry& e : state.entries()) total += padded(e.nbytes());
  if (buffer_.size() < total) buffer_ = std::vector<uint8_t>(total);

  parts_ = state.parts();
  tensors_.clear();
  layouts_.clear();
  spans_.clear();
  size_t offset = 0;
  nbytes_ = 0;
  for (const StateEntry& e : state.entries()) {
    uint8_t* dst = buffer_.data() + offset;
    if (e.dtype == DType::F32) {
      int64_t bad = -1;
      const int64_t n = shape_numel(e.shape);
      if (!copy_checking_finite(reinterpret_cast<float*>(dst), static_cast<const float*>(e.data), n, &bad))
        throw Error(str_cat("[checkpoint] ", e.part, " tensor '", e.name, "' holds a non-finite value (",
                            static_cast<const float*>(e.data)[bad], " at index ", bad,
                            "); no checkpoint is written from non-finite state"));
    } else {
      parallel_copy(dst, e.data, e.nbytes());
    }
    tensors_[e.part].push_back(SafeTensor{e.name, e.dtype, e.shape, dst});
    spans_.emplace_back(dst, e.nbytes());
    offset += padded(e.nbytes());
    nbytes_ += e.nbytes();
  }
  for (const std::string& part : parts_)
    layouts_[part] = safetensors_layout(part + ".safetensors", tensors_[part], state.metadata(part));
  staged_ = true;
}

const SafeTensorsLayout& StagedState::layout(const std::string& part) const {
  const auto it = layouts_.find(part);
  LT_CHECK(it != layouts_.end(), "[checkpoint] no staged part '", part, "'");
  return it->second;
}

uint64_t StagedState::digest() const {
  Xxh3 h;
  for (const auto& [p, n] : spans_) h.update(p, n);
  return h.digest();
}

}  // namespace lintrain
