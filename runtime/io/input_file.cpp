#include "runtime/io/input_file.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <filesystem>
#include <vector>

#include "runtime/error.h"

namespace lintrain {

std::string non_regular_kind(unsigned mode) {
  if (S_ISREG(mode)) return "";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  return "not a regular file";
}

std::string input_error_text(const std::string& path, const std::string& what, int err) {
  const std::string quoted = str_cat(what, " '", path, "'");
  std::error_code ec;
  const std::string cwd = std::filesystem::current_path(ec).string();
  const std::string relative =
      std::filesystem::path(path).is_relative() && !cwd.empty() ? str_cat(" (relative to the working directory ", cwd, ")") : "";
  switch (err) {
    case ENOENT:
      return str_cat(quoted, " does not exist", relative, "; check the path");
    case ENOTDIR:
      return str_cat(quoted, " does not exist: a part of the path before its last name is a file, not a directory");
    case EACCES:
    case EPERM:
      return str_cat(quoted, ": permission denied (the file is not readable by this user, or a directory on its path ",
                     "is not searchable); fix its permissions (chmod/chown) or use a copy you can read");
    case ENXIO:
      return str_cat(quoted, " is a socket or a device without a reader; give a regular file");
    case ELOOP:
      return str_cat(quoted, " is a loop of symbolic links; give the real file");
    case ENAMETOOLONG:
      return str_cat(quoted, ": the path is too long");
    default:
      return str_cat("cannot open ", quoted, ": ", std::strerror(err));
  }
}

namespace {

// "run.out_dir 'runs/x'", or "'runs' (on the path of run.out_dir 'runs/x')".
std::string output_dir_name(const std::string& dir, const std::string& path, const std::string& what) {
  return dir == path ? str_cat(what, " '", path, "'") : str_cat("'", dir, "' (on the path of ", what, " '", path, "')");
}

// Why `dir` (a part of an output path) cannot be made (`creating`) or
// written in, from errno.
std::string output_error_text(const std::string& dir, const std::string& path, const std::string& what, int err,
                              bool creating) {
  const std::string where = output_dir_name(dir, path, what);
  const char* doing = creating ? "create" : "write in";
  switch (err) {
    case EACCES:
    case EPERM:
      return str_cat("cannot ", doing, " ", where, ": permission denied (",
                     creating ? "this user may not write in its parent directory, or a directory on its path is not "
                                "searchable"
                              : "it is not writable by this user",
                     "); choose a directory you can write, or fix the permissions (chmod/chown)");
    case EROFS:
      return str_cat("cannot ", doing, " ", where, ": the file system is read-only; choose a writable directory");
    case ENOSPC:
    case EDQUOT:
      return str_cat("cannot ", doing, " ", where, ": no space left on the device (or the quota is used up); free "
                     "space or choose another directory");
    case ELOOP:
      return str_cat(where, " is a loop of symbolic links; give a real directory");
    case ENAMETOOLONG:
      return str_cat(where, ": the path is too long");
    default:
      return str_cat("cannot ", doing, " ", where, ": ", std::strerror(err));
  }
}

}  // namespace

std::string write_error_text(int err) {
  switch (err) {
    case EFBIG: {
      struct rlimit rl;
      std::string limit = "ulimit -f";
      if (::getrlimit(RLIMIT_FSIZE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        limit = str_cat("ulimit -f = ", rl.rlim_cur / 1024, " blocks of 1 KiB, ", rl.rlim_cur, " bytes");
      return str_cat("the file would exceed this process's file-size limit (", limit, "); raise it (ulimit -f ",
                     "unlimited) before starting lintrain");
    }
    default:
      return std::strerror(err);
  }
}

void create_output_dir(const std::string& path, const std::string& what) {
  if (path.empty()) throw IoError(str_cat(what, " is an empty path; give a directory"));
  std::filesystem::path at;
  for (const std::filesystem::path& part : std::filesystem::path(path)) {
    if (part.empty()) continue;  // a trailing slash
    at /= part;
    const std::string dir = at.string();
    struct stat st;
    if (::stat(dir.c_str(), &st) == 0) {
      if (S_ISDIR(st.st_mode)) continue;
      const std::string kind = non_regular_kind(st.st_mode);
      throw IoError(str_cat(output_dir_name(dir, path, what), " is ", kind.empty() ? "a file" : kind,
                            ", not a directory; remove it or choose another path"));
    }
    if (errno != ENOENT) throw IoError(output_error_text(dir, path, what, errno, /*creating=*/true));
    // stat follows links: a link whose target is missing is not "absent".
    if (::lstat(dir.c_str(), &st) == 0 && S_ISLNK(st.st_mode)) {
      std::vector<char> target(PATH_MAX + 1, '\0');
      const ssize_t n = ::readlink(dir.c_str(), target.data(), target.size() - 1);
      throw IoError(str_cat(output_dir_name(dir, path, what), " is a symbolic link to '",
                            n > 0 ? std::string(target.data(), static_cast<size_t>(n)) : std::string("?"),
                            "', which does not exist; create the directory it points to, remove the link, or "
                            "choose another path"));
    }
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST)
      throw IoError(output_error_text(dir, path, what, errno, /*creating=*/true));
  }
  if (::access(path.c_str(), W_OK | X_OK) != 0)
    throw IoError(output_error_text(path, path, what, errno, /*creating=*/false));
}

int open_input_file(const std::string& path, const std::string& what) {
  if (path.empty()) throw IoError(str_cat(what, " is an empty path; give a file"));
  // O_NONBLOCK: opening a FIFO with no writer or a tty returns at once instead
  // of waiting; what it is decides next, before anything reads.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) throw IoError(input_error_text(path, what, errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw IoError(str_cat("cannot stat ", what, " '", path, "': ", std::strerror(err)));
  }
  const std::string kind = non_regular_kind(st.st_mode);
  if (!kind.empty()) {
    ::close(fd);
    throw IoError(str_cat(what, " '", path, "' is ", kind, ", not a regular file; give a regular file",
                          S_ISDIR(st.st_mode) ? "" : " (lintrain reads inputs by size and offset, never from a stream)"));
  }
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) (void)::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  return fd;
}

std::string read_input_file(const std::string& path, const std::string& what, size_t max_bytes) {
  const int fd = open_input_file(path, what);
  struct stat st;
  if (::fstat(fd, &st) != 0 || static_cast<uint64_t>(st.st_size) > max_bytes) {
    ::close(fd);
    throw IoError(str_cat(what, " '", path, "' is ", st.st_size, " bytes, above the limit of ", max_bytes,
                          " for this kind of file; is it the right file?"));
  }
  std::string out(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < out.size()) {
    const ssize_t n = ::read(fd, out.data() + got, out.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      throw IoError(str_cat("cannot read ", what, " '", path, "': ", std::strerror(err)));
    }
    if (n == 0) break;  // it shrank while we read: take what is there
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  out.resize(got);
  return out;
}

}  // namespace lintrain
