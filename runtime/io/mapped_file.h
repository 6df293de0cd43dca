// A read-only memory mapping of a whole file (token files, safetensors). The
// kernel pages data in on demand and shares it between ranks on one node, so
// a multi-GB token file costs no copy and no up-front read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace lintrain {

class MappedFile {
 public:
  MappedFile() = default;
  // Maps `path`; throws IoError naming the path and the OS error when it is
  // missing, not a regular file or cannot be mapped. An empty file maps to
  // size() == 0 and data() == nullptr. populate: map every page now (one
  // call instead of a fault per page; for a file about to be read whole).
  // `what` names the file in errors ("data.path", "--init-from file"); see input_file.h.
  static MappedFile open(const std::string& path, bool populate = false, const std::string& what = "file");

  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  void release() noexcept;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

}  // namespace lintrain
