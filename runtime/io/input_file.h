// Opening the files a user names: run files, data, --init-from weights,
// checkpoint parts, token files (and creating the directories output goes to). One function does it for every reader, so
// every one of them
//   - never blocks: a FIFO, a device or a socket given as an input is refused
//     before anything could wait on it (the open itself is non-blocking), and
//   - says what is wrong in words that lead to the fix: "does not exist
//     (relative to the working directory /x)", "permission denied", "is a
//     FIFO, not a regular file", instead of a bare strerror or a hang.
#pragma once

#include <cstddef>
#include <string>

namespace lintrain {

// A read-only descriptor (O_CLOEXEC, blocking mode) of the regular file at
// `path`. `what` names the file in errors ("run file", "data.path",
// "--init-from file"). Throws IoError naming the path, the problem and the fix.
int open_input_file(const std::string& path, const std::string& what);

// The whole file at `path` (at most max_bytes, else IoError naming the limit).
std::string read_input_file(const std::string& path, const std::string& what, size_t max_bytes = size_t{1} << 30);

// Why `path` cannot be used as an input, from the errno of a failed open or
// stat: "'p' does not exist (relative to the working directory /w)",
// "permission denied on 'p' (...)", ... One wording for every reader.
std::string input_error_text(const std::string& path, const std::string& what, int err);

// Why a write() (or ftruncate, fsync) of an output failed, from its errno:
// strerror, except EFBIG, which names its cause and fix: it is this
// process's file-size limit (RLIMIT_FSIZE; main ignores SIGXFSZ so that a
// write past it fails instead of killing the process):
// "the file would exceed this process's file-size limit (ulimit -f = 6000
// blocks of 1 KiB); raise it (ulimit -f unlimited) before starting lintrain".
std::string write_error_text(int err);

// "a FIFO", "a directory", "a character device", ... for st_mode, or "" for
// a regular file.
std::string non_regular_kind(unsigned mode);

// Creates the directory `path` (with its parents, like mkdir -p) for writing
// output into, and checks that this user may write in it. `what` names it in
// errors ("run.out_dir", "checkpoint directory"). Throws IoError naming the
// part of the path at fault and the fix: permission denied (and where), a
// part that is a file, a symbolic link whose target does not exist, a
// read-only file system, no space.
void create_output_dir(const std::string& path, const std::string& what);

}  // namespace lintrain
