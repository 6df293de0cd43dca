// The checkpoint service that `lintrain launch` runs beside the ranks when
// the run file says checkpoint.service: local: a child process `lintrain
// ckpt serve --dir <checkpoint.dir>` on a free loopback port, in a process
// group of its own (a Ctrl-C at the terminal stops the ranks, which save
// their last checkpoint through it, not the service first), restarted on
// the same port if it dies, and stopped once the job has ended. It dies
// with the launcher (PR_SET_PDEATHSIG), so it is never left behind.
#pragma once

#include <sys/types.h>

#include <string>

namespace lintrain {

class LocalService {
 public:
  // Starts the service and waits until it listens. Throws Error when it
  // does not come up (its own messages are on stderr above).
  LocalService(const std::string& lintrain_binary, const std::string& dir, const std::string& token_file);
  ~LocalService();  // stop()
  LocalService(const LocalService&) = delete;
  LocalService& operator=(const LocalService&) = delete;

  const std::string& address() const { return address_; }
  pid_t pid() const { return pid_; }
  // The child has exited (waitpid said so, with `status`): reports it and
  // starts it again on the same address, up to a few times.
  void restart(int status);
  // SIGTERM, then SIGKILL after a grace period; idempotent.
  void stop();

 private:
  void spawn(const std::string& listen);
  std::string binary_, dir_, token_file_, tmp_dir_, ready_file_, address_;
  pid_t pid_ = -1;
  int restarts_ = 0;
};

}  // namespace lintrain
