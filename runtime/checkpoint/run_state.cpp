#include "runtime/checkpoint/run_state.h"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "runtime/checkpoint/checksum.h"
#include "runtime/cpu/copy.h"
#include "runtime/device.h"
#include "runtime/error.h"

namespace lintrain {

void RunState::note_part(const std::string& part) {
  if (std::find(parts_.begin(), parts_.end(), part) == parts_.end()) parts_.push_back(part);
}

void RunState::add(const std::string& part, const std::string& name, DType dtype, const Shape& shape, void* data,
                   Device device) {
  LT_CHECK(!part.empty() && !name.empty(), "[RunState] an entry needs a part and a name (got '", part, "', '",
           name, "')");
  LT_CHECK(find(part, name) == nullptr, "[RunState] entry '", name, "' added twice to part '", part, "'");
  StateEntry e{part, name, dtype, shape, data, device};
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
  std::vector<uint8_t> piece;  // device entries go through the host in pieces
  constexpr size_t kPiece = size_t{16} << 20;
  for (const StateEntry& e : entries_) {
    if (e.device == Device::CPU) {
      h.update(e.data, e.nbytes());
      continue;
    }
    for (size_t at = 0; at < e.nbytes(); at += kPiece) {
      const size_t n = std::min(kPiece, e.nbytes() - at);
      piece.resize(std::max(piece.size(), n));
      copy_to_host(e.device, piece.data(), static_cast<const uint8_t*>(e.data) + at, n);
      h.update(piece.data(), n);
    }
  }
  return h.digest();
}

void StagedState::Unmap::operator()(uint8_t* p) const { ::munmap(p, bytes); }

void StagedState::prepare(const RunState& state) {
  staged_ = false;
  constexpr size_t kAlign = 4096;
  // Each part's safetensors layout: header bytes, then its tensors at their
  // data offsets in the writer's order (by element size, then name).
  std::vector<SafeTensorsLayout> layouts;
  std::vector<std::vector<SafeTensor>> tensors(state.parts().size());
  std::vector<std::vector<size_t>> entry_of(state.parts().size());  // layout order -> entry index
  for (size_t i = 0; i < state.entries().size(); ++i) {
    const StateEntry& e = state.entries()[i];
    const size_t p = static_cast<size_t>(
        std::find(state.parts().begin(), state.parts().end(), e.part) - state.parts().begin());
    // A placeholder pointer: the layout only needs names, dtypes and shapes.
    tensors[p].push_back(SafeTensor{e.name, e.dtype, e.shape, e.data});
    entry_of[p].push_back(i);
  }
  size_t total = 0;
  for (size_t p = 0; p < state.parts().size(); ++p) {
    layouts.push_back(safetensors_layout(state.parts()[p] + ".safetensors", tensors[p], state.metadata(state.parts()[p])));
    total += (layouts.back().total_bytes() + kAlign - 1) / kAlign * kAlign;
  }
  if (capacity_ < total) {
    buffer_.reset();  // the old mapping goes first: never two state-sized buffers at once
    const size_t bytes = std::max(total, kAlign);
    void* buf = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (buf == MAP_FAILED)
      throw Error(str_cat("[checkpoint] cannot allocate the ", bytes, "-byte staging buffer: ", std::strerror(errno)));
    buffer_ = std::unique_ptr<uint8_t, Unmap>(static_cast<uint8_t*>(buf), Unmap{bytes});
    capacity_ = bytes;
  }
  files_.clear();
  spans_.assign(state.entries().size(), {nullptr, 0});
  nbytes_ = 0;
  size_t offset = 0;
  for (size_t p = 0; p < state.parts().size(); ++p) {
    const SafeTensorsLayout& l = layouts[p];
    uint8_t* file = buffer_.get() + offset;
    std::memcpy(file, l.prefix.data(), l.prefix.size());
    size_t at = l.prefix.size();
    for (const SafeTensor* t : l.order) {
      const size_t k = static_cast<size_t>(t - tensors[p].data());  // the tensor's index in its part
      spans_[entry_of[p][k]] = {file + at, t->nbytes()};
      at += t->nbytes();
      nbytes_ += t->nbytes();
    }
    files_.push_back(StagedFile{state.parts()[p] + ".safetensors", file, l.total_bytes()});
    offset += (l.total_bytes() + kAlign - 1) / kAlign * kAlign;
  }
}

void StagedState::copy(const RunState& state) {
  staged_ = false;
  LT_CHECK(spans_.size() == state.entries().size(), "[checkpoint] staging a state other than the one prepared");
  for (size_t i = 0; i < spans_.size(); ++i) {
    const StateEntry& e = state.entries()[i];
    uint8_t* dst = spans_[i].first;
    if (e.device != Device::CPU) {  // to the host first (the GPU copy waits for the work before it)
      copy_to_host(e.device, dst, e.data, e.nbytes());
      const int64_t bad =
          e.dtype == DType::F32 ? find_non_finite(reinterpret_cast<const float*>(dst), shape_numel(e.shape)) : -1;
      if (bad >= 0)
        throw Error(str_cat("[checkpoint] ", e.part, " tensor '", e.name, "' holds a non-finite value (",
                            reinterpret_cast<const float*>(dst)[bad], " at index ", bad,
                            "); no checkpoint is written from non-finite state"));
    } else if (e.dtype == DType::F32) {
      int64_t bad = -1;
      const int64_t n = shape_numel(e.shape);
      if (!copy_checking_finite(reinterpret_cast<float*>(dst), static_cast<const float*>(e.data), n, &bad))
        throw Error(str_cat("[checkpoint] ", e.part, " tensor '", e.name, "' holds a non-finite value (",
                            static_cast<const float*>(e.data)[bad], " at index ", bad,
                            "); no checkpoint is written from non-finite state"));
    } else if (e.nbytes() > 0) {  // a null pointer is allowed for an empty entry
      std::memcpy(dst, e.data, e.nbytes());
    }
  }
  staged_ = true;
}

uint64_t StagedState::digest() const {
  Xxh3 h;
  for (const auto& [p, n] : spans_) h.update(p, n);
  return h.digest();
}

}  // namespace lintrain
