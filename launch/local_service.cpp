#include "launch/local_service.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>
#include <vector>

#include "runtime/checkpoint/store.h"
#include "runtime/error.h"

namespace lintrain {
namespace {

constexpr int kMaxRestarts = 5;
constexpr double kStartTimeoutS = 30, kStopGraceS = 30;

std::string describe_status(int status) {
  if (WIFEXITED(status)) return str_cat("exit code ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return str_cat("killed by signal ", WTERMSIG(status), " (", strsignal(WTERMSIG(status)), ")");
  return "stopped";
}

}  // namespace

LocalService::LocalService(const std::string& lintrain_binary, const std::string& dir, const std::string& token_file)
    : binary_(lintrain_binary), dir_(dir), token_file_(token_file) {
  std::string tmpl = (std::filesystem::temp_directory_path() / "lintrain-launch-XXXXXX").string();
  if (!mkdtemp(tmpl.data())) throw Error(str_cat("cannot create a temporary folder: ", std::strerror(errno)));
  tmp_dir_ = tmpl;
  ready_file_ = tmp_dir_ + "/service.address";
  spawn("127.0.0.1:0");
}

LocalService::~LocalService() {
  stop();
  remove_tree(tmp_dir_);
}

void LocalService::spawn(const std::string& listen) {
  ::unlink(ready_file_.c_str());
  std::vector<std::string> args = {binary_, "ckpt", "serve", "--dir", dir_, "--listen", listen,
                                   "--ready-file", ready_file_};
  if (!token_file_.empty()) args.insert(args.end(), {"--token-file", token_file_});
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) throw Error(str_cat("cannot start the checkpoint service: fork: ", std::strerror(errno)));
  if (pid == 0) {
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) _exit(1);  // the launcher died before prctl
    ::execv(argv[0], argv.data());
    std::fprintf(stderr, "lintrain: error: cannot run %s: %s\n", argv[0], std::strerror(errno));
    _exit(127);
  }
  pid_ = pid;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(kStartTimeoutS);
  while (true) {
    try {
      std::string addr = read_small_file(ready_file_, 256);
      while (!addr.empty() && (addr.back() == '\n' || addr.back() == ' ')) addr.pop_back();
      if (!addr.empty()) {
        address_ = addr;
        return;
      }
    } catch (const IoError&) {
      // not written yet
    }
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      throw Error(str_cat("the checkpoint service (lintrain ckpt serve --dir ", dir_, ") did not start: ",
                          describe_status(status), "; its message is above"));
    }
    if (std::chrono::steady_clock::now() > deadline) {
      stop();
      throw Error(str_cat("the checkpoint service did not listen within ", kStartTimeoutS, " s"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void LocalService::restart(int status) {
  pid_ = -1;
  if (++restarts_ > kMaxRestarts) {
    std::fprintf(stderr,
                 "lintrain launch: the checkpoint service ended (%s) for the %d%s time; not restarting it again: "
                 "the run goes on and its saves fail until it ends\n",
                 describe_status(status).c_str(), restarts_, restarts_ == 1 ? "st" : "th");
    return;
  }
  std::fprintf(stderr, "lintrain launch: the checkpoint service ended (%s); restarting it on %s\n",
               describe_status(status).c_str(), address_.c_str());
  std::fflush(stderr);
  try {
    spawn(address_);
  } catch (const Error& e) {
    std::fprintf(stderr, "lintrain launch: %s\n", e.what());
  }
}

void LocalService::stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(kStopGraceS);
  int status = 0;
  while (::waitpid(pid_, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  pid_ = -1;
}

}  // namespace lintrain
