#include "runtime/io/file_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "runtime/error.h"
#include "runtime/process.h"

namespace lintrain {

std::unique_ptr<FileLock> FileLock::try_lock(const std::string& path, const std::string& who, std::string* holder) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0)
    throw IoError(str_cat("cannot create the lock file '", path, "': ", std::strerror(errno),
                          "; the directory must be writable"));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (holder) {
      char buf[512];
      const ssize_t n = ::pread(fd, buf, sizeof buf, 0);
      holder->assign(buf, n > 0 ? static_cast<size_t>(n) : 0);
      while (!holder->empty() && (holder->back() == '\n' || holder->back() == ' ')) holder->pop_back();
    }
    ::close(fd);
    return nullptr;
  }
  const std::string text = who + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, text.data(), text.size(), 0) < 0) {
    // The lock holds without the note; only the message to a second process is poorer.
  }
  return std::unique_ptr<FileLock>(new FileLock(fd));
}

FileLock::~FileLock() { ::close(fd_); }

std::string this_process_description() {
  return str_cat("pid ", ::getpid(), " on ", host_name());
}

}  // namespace lintrain
