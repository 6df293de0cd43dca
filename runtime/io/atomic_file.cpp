#include "runtime/io/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "runtime/error.h"
#include "runtime/io/input_file.h"

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

namespace {
constexpr size_t kDirectAlign = 4096;
constexpr size_t kBounceBytes = size_t{4} << 20;
bool aligned(const void* p, size_t n) {
  return reinterpret_cast<uintptr_t>(p) % kDirectAlign == 0 && n % kDirectAlign == 0;
}
}  // namespace

void AtomicFileWriter::Free::operator()(void* p) const { std::free(p); }

AtomicFileWriter::AtomicFileWriter(std::string path, bool direct_io) : path_(std::move(path)) {
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
  if (direct_io) {
    void* buf = nullptr;
    const int flags = ::fcntl(fd_, F_GETFL);
    if (flags >= 0 && ::fcntl(fd_, F_SETFL, flags | O_DIRECT) == 0 &&
        ::posix_memalign(&buf, kDirectAlign, kBounceBytes) == 0) {
      bounce_.reset(static_cast<uint8_t*>(buf));
      direct_ = true;
    }
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
  throw IoError(str_cat("[io] cannot write '", path_, "': ", what, " failed: ", write_error_text(err)));
}

void AtomicFileWriter::write_fd(const void* data, size_t nbytes) {
  const char* p = static_cast<const char*>(data);
  while (nbytes > 0) {
    const ssize_t n = ::write(fd_, p, nbytes);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EINVAL && direct_) {
        // The file system takes O_DIRECT at open but not at write: write normally.
        const int flags = ::fcntl(fd_, F_GETFL);
        if (flags >= 0 && ::fcntl(fd_, F_SETFL, flags & ~O_DIRECT) == 0) {
          direct_ = false;
          continue;
        }
      }
      fail("write", errno);
    }
    p += n;
    nbytes -= static_cast<size_t>(n);
  }
}

void AtomicFileWriter::flush_bounce(bool final) {
  if (bounce_used_ == 0) return;
  size_t n = bounce_used_;
  if (final && direct_) {
    n = (n + kDirectAlign - 1) / kDirectAlign * kDirectAlign;  // padded; truncated at commit
    std::memset(bounce_.get() + bounce_used_, 0, n - bounce_used_);
  }
  write_fd(bounce_.get(), n);
  bounce_used_ = 0;
}

void AtomicFileWriter::write(const void* data, size_t nbytes) {
  LT_CHECK(fd_ >= 0 && !committed_, "[io] write to '", path_, "' after commit or failure");
  const uint8_t* p = static_cast<const uint8_t*>(data);
  size_ += nbytes;
  if (!bounce_) {
    write_fd(p, nbytes);
    return;
  }
  while (nbytes > 0) {
    // Aligned memory at an aligned file offset goes straight to the disk.
    if (bounce_used_ == 0 && direct_) {
      const size_t whole = nbytes / kDirectAlign * kDirectAlign;
      if (whole > 0 && aligned(p, whole)) {
        write_fd(p, whole);
        p += whole;
        nbytes -= whole;
        continue;
      }
    }
    const size_t n = std::min(nbytes, kBounceBytes - bounce_used_);
    std::memcpy(bounce_.get() + bounce_used_, p, n);
    bounce_used_ += n;
    p += n;
    nbytes -= n;
    if (bounce_used_ == kBounceBytes) flush_bounce(false);
  }
}

void AtomicFileWriter::commit() {
  LT_CHECK(fd_ >= 0 && !committed_, "[io] commit of '", path_, "' twice or after a failure");
  if (bounce_) {
    const bool padded = direct_ && bounce_used_ % kDirectAlign != 0;
    flush_bounce(true);
    if (padded && ::ftruncate(fd_, static_cast<off_t>(size_)) != 0) fail("ftruncate", errno);
  }
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

std::vector<std::string> remove_stale_temp_files(const std::string& dir, double quiet_s) {
  std::vector<std::string> removed;
  std::error_code ec;
  const auto now = std::filesystem::file_time_type::clock::now();
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    // "<name>.tmp.<pid>.<n>": the pid and the counter are decimal.
    const size_t tmp = name.rfind(".tmp.");
    if (tmp == std::string::npos || !e.is_regular_file(ec)) continue;
    const std::string rest = name.substr(tmp + 5);
    const size_t dot = rest.find('.');
    if (dot == std::string::npos || dot == 0 || dot + 1 == rest.size() ||
        rest.find_first_not_of("0123456789.") != std::string::npos || rest.find('.', dot + 1) != std::string::npos)
      continue;
    const long pid = std::strtol(rest.substr(0, dot).c_str(), nullptr, 10);
    if (pid <= 0 || (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM)) continue;  // its writer runs
    const auto mtime = std::filesystem::last_write_time(e.path(), ec);
    if (ec || std::chrono::duration<double>(now - mtime).count() < quiet_s) continue;
    if (std::filesystem::remove(e.path(), ec)) removed.push_back(name);
  }
  return removed;
}

}  // namespace lintrain
