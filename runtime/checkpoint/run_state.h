// The state of a run as one mechanism: a list of named, typed tensors plus
// string metadata, grouped into parts (one file each in a checkpoint).
//
// Everything a bit-exact continuation needs is an entry: the master weights
// (part "model", under their Hugging Face names, so the part is itself a
// loadable model.safetensors), every optimizer state tensor and word, the step,
// the tokens seen, the data loader's position (part "trainer"). New state (FP8
// scales and amax histories, say) is one more add() where it lives, not a new
// file format. Entries borrow the live memory of their owners: saving reads
// it, restoring writes it, so a RunState is built once per run and stays
// valid as long as the model, optimizer and counters it points into. An
// entry may live on a GPU (a CUDA run's weights and optimizer state): saving
// and digests copy it to the host, restoring copies it back, each an explicit
// counted copy (runtime/device.h); nothing else about it differs.
//
// Every part is replicated: all ranks hold the same values (data- and
// sequence-parallel ranks keep identical parameters and optimizer state), so
// rank 0 writes the parts and the other ranks only vouch for their copies
// with digest() (a checkpoint whose ranks disagree is not published). A
// sharded optimizer would add parts that each rank writes for itself; the
// manifest already records which rank wrote which file.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "runtime/dtype.h"
#include "runtime/io/safetensors.h"
#include "runtime/tensor.h"

namespace lintrain {

struct StateEntry {
  std::string part;  // "model" | "trainer": the file it is saved in (<part>.safetensors)
  std::string name;  // unique within the part
  DType dtype = DType::F32;
  Shape shape;       // [] = a scalar
  void* data = nullptr;  // borrowed live memory of shape_numel(shape) elements
  Device device = Device::CPU;  // where `data` lives
  size_t nbytes() const { return static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype); }
};

class RunState {
 public:
  // Adds an entry. Throws lintrain::Error for a duplicate name within the
  // part, an empty name or part, or null data with a nonzero size.
  void add(const std::string& part, const std::string& name, DType dtype, const Shape& shape, void* data,
           Device device = Device::CPU);
  void add_scalar(const std::string& part, const std::string& name, int64_t* value);   // I64, shape []
  void add_scalar(const std::string& part, const std::string& name, uint64_t* value);  // U64, shape []
  void set_metadata(const std::string& part, const std::string& key, const std::string& value);

  const std::vector<StateEntry>& entries() const { return entries_; }
  // The entry `name` of `part`, or nullptr.
  const StateEntry* find(const std::string& part, const std::string& name) const;
  // Parts in the order they were first used.
  const std::vector<std::string>& parts() const { return parts_; }
  // A part's metadata (empty when it has none).
  const std::map<std::string, std::string>& metadata(const std::string& part) const;
  size_t nbytes() const;

  // XXH3-64 over every entry's bytes in order: two ranks holding the same
  // state get the same digest.
  uint64_t digest() const;

 private:
  void note_part(const std::string& part);
  std::vector<StateEntry> entries_;
  std::vector<std::string> parts_;
  std::map<std::string, std::map<std::string, std::string>> metadata_;
};

// One part's file, ready to write: the complete safetensors bytes.
struct StagedFile {
  std::string name;  // "<part>.safetensors"
  const uint8_t* data = nullptr;
  size_t size = 0;
};

// A snapshot of a RunState taken between two steps, laid out as the bytes of
// its part files, which a background writer streams while training changes
// the live state. Each file starts 4096-aligned, so it can go to the disk
// with direct I/O without another copy. The buffer is reused from one save
// to the next.
class StagedState {
 public:
  // Lays out the files for `state` (growing the buffer when needed) and
  // writes their safetensors headers; copies no tensor yet. A new buffer is
  // mapped with its pages populated: touching 1 GB of fresh pages one fault
  // at a time costs seconds on some VMs, which must not land in a save.
  void prepare(const RunState& state);
  // Copies every entry of the prepared state to its place in its file, on
  // this thread (it runs beside training, whose cores it must not contend
  // for). F32 entries are checked as they are copied: a NaN or infinity
  // throws lintrain::Error naming the tensor and its index (no checkpoint is
  // ever made of non-finite state), and nothing counts as staged then.
  void copy(const RunState& state);
  void stage(const RunState& state) {
    prepare(state);
    copy(state);
  }
  bool staged() const { return staged_; }

  // The part files in the order of RunState::parts().
  const std::vector<StagedFile>& files() const { return files_; }
  // Bytes of tensor data (without the headers).
  size_t nbytes() const { return nbytes_; }
  // RunState::digest() of the state as it was staged.
  uint64_t digest() const;

 private:
  struct Unmap {
    size_t bytes;
    void operator()(uint8_t* p) const;
  };
  std::unique_ptr<uint8_t, Unmap> buffer_{nullptr, Unmap{0}};
  size_t capacity_ = 0;
  std::vector<StagedFile> files_;
  std::vector<std::pair<uint8_t*, size_t>> spans_;  // each entry's bytes in the buffer, in entry order
  size_t nbytes_ = 0;
  bool staged_ = false;
};

}  // namespace lintrain
