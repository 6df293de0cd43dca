// Writing files so that a crash never leaves a partial file under the final
// name: bytes go to a temporary file in the same directory, which is fsync'ed
// and then renamed over the destination (rename is atomic within a file
// system), and the directory is fsync'ed so the rename itself is durable.
// Readers therefore see either the old file or the complete new one.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace lintrain {

class AtomicFileWriter {
 public:
  // Creates "<path>.tmp.<pid>.<n>" next to `path`; throws IoError when the
  // directory does not exist or is not writable.
  //
  // direct_io: write with O_DIRECT, bypassing the page cache (no copy into
  // it, no dirty-page throttling of the writer and of everything else on the
  // machine; several times faster for checkpoint-sized files). Pieces whose
  // address and size are multiples of 4096 go to the disk as they are, the
  // rest through an aligned bounce buffer; the last block is padded and the
  // file truncated to its size at commit(). Where the file system refuses
  // O_DIRECT (tmpfs, some network file systems) it writes normally.
  explicit AtomicFileWriter(std::string path, bool direct_io = false);
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
  void write_fd(const void* data, size_t nbytes);  // all of it, retrying short writes
  void flush_bounce(bool final);
  std::string path_;
  std::string temp_path_;
  int fd_ = -1;
  bool committed_ = false;
  bool direct_ = false;
  uint64_t size_ = 0;  // bytes written so far (the file's size at commit)
  struct Free {
    void operator()(void* p) const;
  };
  std::unique_ptr<uint8_t, Free> bounce_;  // direct I/O: 4096-aligned staging of unaligned pieces
  size_t bounce_used_ = 0;
};

// Replaces the file at `path` with `bytes`, atomically as above.
void write_file_atomic(const std::string& path, std::string_view bytes);

// Removes the temporary files that killed writers left in `dir`
// ("<name>.tmp.<pid>.<n>" whose process no longer runs on this machine and
// that nobody wrote to in the last `quiet_s` seconds); returns their names.
// Never throws: a file it cannot remove stays (and is harmless).
std::vector<std::string> remove_stale_temp_files(const std::string& dir, double quiet_s = 60);

}  // namespace lintrain
