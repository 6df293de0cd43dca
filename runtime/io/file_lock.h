// An exclusive advisory lock (flock) on a file, held for the life of the
// object and released by the kernel when the process dies, however it dies:
// a lock file left by a killed run never blocks the next one. The holder's
// description is written into the file so that a second process can say who
// holds it.
#pragma once

#include <memory>
#include <string>

namespace lintrain {

class FileLock {
 public:
  // Creates `path` if needed and locks it. Returns null when another process
  // holds the lock; *holder (when given) then gets its description ("" when
  // it wrote none). Throws IoError when the file cannot be created.
  static std::unique_ptr<FileLock> try_lock(const std::string& path, const std::string& who,
                                            std::string* holder = nullptr);
  ~FileLock();
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_;
};

// "pid 1234 on host-a" for this process: what a lock holder writes.
std::string this_process_description();

}  // namespace lintrain
