#include "runtime/io/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <utility>

#include "runtime/error.h"

namespace lintrain {

namespace {
std::string parent_dir(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}
std::atomic<unsigned> g_temp_counter{0};
}  // namespace

AtomicFileWriter::AtomicFileWriter(std::string path) : path_(std::move(path)) {
  if (path_.empty() || path_.back() == '/') throw IoError(str_cat("[io] invalid output file name '", path_, "'"));
  // O_EXCL never reuses a file; a name left by a crashed process with the
  // same pid (common in containers) just moves us on to the next counter.
  for (int attempt = 0; attempt < 1000 && fd_ < 0; ++attempt) {
    temp_path_ = str_cat(path_, ".tmp.", ::getpid(), ".", g_temp_counter.fetch_add(1));
    fd_ = ::open(temp_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd_ < 0 && errno != EEXIST) break;
  }
  if (fd_ < 0) {
    throw IoError(str_cat("[io] cannot create '", temp_path_, "' to write '", path_,
                          "': ", std::strerror(errno), " (does the directory exist and is it writable?)"));
  }
}

AtomicFileWriter::~AtomicFileWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(temp_path_.c_str());
}

void AtomicFileWriter::fail(const std::string& what, int err) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  ::unlink(temp_path_.c_str());
  throw IoError(str_cat("[io] cannot write '", path_, "': ", what, " failed: ", std::strerror(err)));
}

void AtomicFileWriter::write(const void* data, size_t nbytes) {
  LT_CHECK(fd_ >= 0 && !committed_, "[io] write to '", path_, "' after commit or failure");
  const char* p = static_cast<const char*>(data);
  while (nbytes > 0) {
    const ssize_t n = ::write(fd_, p, nbytes);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("write", errno);
    }
    p += n;
    nbytes -= static_cast<size_t>(n);
  }
}

void AtomicFileWriter::commit() {
  LT_CHECK(fd_ >= 0 && !committed_, "[io] commit of '", path_, "' twice or after a failure");
  if (::fsync(fd_) != 0) fail("fsync", errno);
  const int fd = std::exchange(fd_, -1);
  if (::close(fd) != 0) fail("close", errno);
  if (::rename(temp_path_.c_str(), path_.c_str()) != 0) fail("rename", errno);
  committed_ = true;
  // Make the rename durable. Some file systems refuse fsync on a directory;
  // the data is already safe then, so that is not an error.
  const int dir = ::open(parent_dir(path_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
}

void write_file_atomic(const std::string& path, std::string_view bytes) {
  AtomicFileWriter w(path);
  w.write(bytes);
  w.commit();
}

}  // namespace lintrain
