// The safetensors format (huggingface/safetensors), which is how lintrain hands
// trained weights to other tools:
//
//   [8 bytes]  N, the header length, unsigned little-endian
//   [N bytes]  JSON: {"<name>": {"dtype": "F32", "shape": [..],
//                                "data_offsets": [begin, end]}, ...,
//                     "__metadata__": {"<key>": "<string>", ...}}
//              padded with spaces so the data starts at a multiple of 8
//   [rest]     the tensors' bytes, little-endian, row-major; offsets are
//              relative to the start of this section
//
// The writer orders tensors by element size (largest first) and then by name,
// as the reference implementation does, so every tensor starts at a multiple
// of its element size. The reader is strict: a header length past the end of
// the file or above 100 MB, malformed JSON, unknown or unsupported dtypes,
// missing/extra fields, shapes that disagree with byte sizes, and data
// offsets that are out of range, overlap, leave holes or do not cover the
// data section exactly are all reported as an IoError naming the file and the
// problem.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "runtime/dtype.h"
#include "runtime/io/mapped_file.h"
#include "runtime/tensor.h"

namespace lintrain {

// One named tensor. `data` is borrowed: for writing it points at the caller's
// memory (e.g. a view into the flat parameter buffer); for reading it points
// into the SafeTensorFile's mapping and lives as long as that object.
struct SafeTensor {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;                 // [] is a scalar (one element)
  const void* data = nullptr;  // shape_numel(shape) * dtype_size(dtype) bytes
  size_t nbytes() const { return static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype); }
};

// Safetensors' name for a dtype ("F32", "BF16", "F8_E4M3", "I32", "U16", ...).
const char* safetensors_dtype_name(DType t);

// The bytes of a safetensors file before its data section (the 8-byte
// header length and the padded JSON header) and the tensors in the order
// their bytes follow it: what a writer that streams a file (the checkpoint
// writer, over a socket or into a file) needs. `path` names it in errors,
// which are those of save_safetensors below.
struct SafeTensorsLayout {
  std::string prefix;
  std::vector<const SafeTensor*> order;  // point into the caller's tensors
  uint64_t data_bytes = 0;
  uint64_t total_bytes() const { return prefix.size() + data_bytes; }
};
SafeTensorsLayout safetensors_layout(const std::string& path, const std::vector<SafeTensor>& tensors,
                                     const std::map<std::string, std::string>& metadata = {});

// Writes `tensors` and `metadata` to `path` atomically (see atomic_file.h).
// Throws lintrain::Error for duplicate or empty names, the reserved name
// "__metadata__", negative dimensions or a null data pointer with nonzero
// size; IoError when the file cannot be written.
void save_safetensors(const std::string& path, const std::vector<SafeTensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// A parsed, validated safetensors file, mapped read-only (or held in memory).
class SafeTensorFile {
 public:
  const std::string& path() const { return path_; }
  // Tensors in file order (ascending data offset).
  const std::vector<SafeTensor>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  // The tensor called `name`; throws IoError naming the file when absent.
  const SafeTensor& get(const std::string& name) const;

 private:
  friend SafeTensorFile load_safetensors(const std::string& path, bool populate);
// The same checks on a file's bytes already in memory (read ahead while
// hashed, fetched from the checkpoint service), which the result keeps
// alive; `name` stands for the path in messages.
SafeTensorFile safetensors_from_memory(const std::string& name, std::shared_ptr<const uint8_t> data, size_t size);
SafeTensorFile safetensors_from_bytes(const std::string& name, std::vector<uint8_t> bytes);
  friend SafeTensorFile safetensors_from_memory(const std::string& name, std::shared_ptr<const uint8_t> data,
                                                size_t size);
  void parse(const uint8_t* bytes, uint64_t size);
  std::string path_;
  MappedFile file_;
  std::shared_ptr<const uint8_t> memory_;
  std::vector<SafeTensor> tensors_;
  std::unordered_map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// Opens and validates `path`; throws IoError on any problem (see above).
// Data pointers are aligned to their element size when the writer ordered
// tensors as ours does; for files from elsewhere, copy with memcpy.
// populate: see MappedFile::open.
SafeTensorFile load_safetensors(const std::string& path, bool populate = false);
// The same checks on a file's bytes already in memory (read ahead while
// hashed, fetched from the checkpoint service), which the result keeps
// alive; `name` stands for the path in messages.
SafeTensorFile safetensors_from_memory(const std::string& name, std::shared_ptr<const uint8_t> data, size_t size);
SafeTensorFile safetensors_from_bytes(const std::string& name, std::vector<uint8_t> bytes);

}  // namespace lintrain
