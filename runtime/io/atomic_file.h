// Writing files so that a crash never leaves a partial file under the final
// name: bytes go to a temporary file in the same directory, which is fsync'ed
// and then renamed over the destination (rename is atomic within a file
// system), and the directory is fsync'ed so the rename itself is durable.
// Readers therefore see either the old file or the complete new one.
#pragma once

#include <string>
#include <string_view>

namespace lintrain {

class AtomicFileWriter {
 public:
  // Creates "<path>.tmp.<pid>.<n>" next to `path`; throws IoError when the
  // directory does not exist or is not writable.
  explicit AtomicFileWriter(std::string path);
  // Without commit(), removes the temporary file; never throws.
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  // Appends bytes; throws IoError (e.g. disk full) naming the destination.
  void write(const void* data, size_t nbytes);
  void write(std::string_view s) { write(s.data(), s.size()); }
  // fsync + close + rename to the final path + fsync of the directory.
  void commit();

  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return temp_path_; }

 private:
  [[noreturn]] void fail(const std::string& what, int err);
  std::string path_;
  std::string temp_path_;
  int fd_ = -1;
  bool committed_ = false;
};

// Replaces the file at `path` with `bytes`, atomically as above.
void write_file_atomic(const std::string& path, std::string_view bytes);

}  // namespace lintrain
