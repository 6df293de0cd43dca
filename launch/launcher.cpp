// `lintrain launch`: builds the mpirun command, runs it as a child and returns
// its exit status. mpirun is a child rather than exec'd so that the launcher
// can later run services beside the ranks (the checkpoint service) and stop
// them when the job ends.
#include "launch/launcher.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/prctl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <thread>

#include "launch/checkpointing.h"
#include "launch/local_service.h"
#include "launch/preflight.h"
#include "runtime/config/config.h"
#include "runtime/error.h"
#include "runtime/io/input_file.h"

namespace lintrain {
namespace {

int parse_positive(const std::string& flag, const std::string& text) {
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno != 0 || v < 1 || v > INT_MAX)
    throw ConfigError(str_cat(flag, " needs a positive whole number, got '", text, "' (e.g. ", flag, " 2)"));
  return static_cast<int>(v);
}

// Cores this process may run on (its affinity mask: taskset, cgroup cpusets).
int usable_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
  return std::max(1u, std::thread::hardware_concurrency());
}

std::string find_on_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    const std::string dir = end > start ? dirs.substr(start, end - start) : ".";
    const std::string candidate = dir + "/" + name;
    struct stat st;
    if (stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(candidate.c_str(), X_OK) == 0)
      return candidate;
    start = end + 1;
  }
  return "";
}

// The options below (--oversubscribe, --bind-to, -x) are Open MPI's; another
// MPI's mpirun would fail with a confusing message, so say so up front.
void check_open_mpi(const std::string& mpirun) {
  const std::string cmd = shell_join({mpirun, "--version"}) + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) throw Error(str_cat("cannot run '", mpirun, " --version': ", std::strerror(errno)));
  std::string out;
  char buf[512];
  while (size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  pclose(p);
  if (out.find("Open MPI") == std::string::npos && out.find("OpenRTE") == std::string::npos) {
    const std::string first_line = out.substr(0, out.find('\n'));
    throw Error(str_cat("lintrain launch needs Open MPI's mpirun, but '", mpirun, "' says '", first_line,
                        "'; install the Debian package openmpi-bin (or put Open MPI's bin/ first on PATH), "
                        "or start the ranks yourself with your MPI's launcher: <launcher> -np N lintrain train RUN.yaml"));
  }
}

std::string self_exe() {
  std::vector<char> buf(PATH_MAX + 1);
  const ssize_t n = readlink("/proc/self/exe", buf.data(), buf.size() - 1);
  if (n <= 0) throw Error(str_cat("cannot find the lintrain binary: readlink /proc/self/exe: ", std::strerror(errno)));
  return std::string(buf.data(), static_cast<size_t>(n));
}

volatile sig_atomic_t g_child = 0;
volatile sig_atomic_t g_terms = 0;

// Passes signals on to mpirun. The first SIGTERM or SIGINT (a Ctrl-C: mpirun
// is in a process group of its own, so only the launcher hears the
// terminal) becomes SIGUSR1, which mpirun hands to every rank as it is: the
// ranks finish their step, save a checkpoint and exit with 75 (a SIGTERM or
// SIGINT would make mpirun kill them within a second); later ones are passed
// on as they came. SIGHUP and SIGUSR1 go on unchanged.
void forward_signal(int sig) {
  if ((sig == SIGTERM || sig == SIGINT) && g_terms++ == 0) sig = SIGUSR1;
  if (g_child > 0) kill(static_cast<pid_t>(g_child), sig);
}

}  // namespace

LaunchOptions launch_options(const LaunchArgs& launch, const RunFileArgs& run) {
  LaunchOptions o;
  if (!launch.nproc.empty()) o.nproc = parse_positive("--nproc", launch.nproc);
  if (!launch.threads_per_rank.empty()) o.threads_per_rank = parse_positive("--threads-per-rank", launch.threads_per_rank);
  o.oversubscribe = launch.oversubscribe;
  o.run_file = run.file;
  o.overrides = run.overrides;
  if (!run.file.empty()) o.train_args.push_back(run.file);
  for (const std::string& kv : run.overrides) o.train_args.insert(o.train_args.end(), {"--set", kv});
  if (!run.init_from.empty()) o.train_args.insert(o.train_args.end(), {"--init-from", run.init_from});
  if (launch.nproc.empty())
    throw ConfigError("launch needs the number of ranks, e.g. lintrain launch --nproc 2 examples/tiny.yaml");
  if (o.run_file.empty())
    throw ConfigError("launch needs a run file, e.g. lintrain launch --nproc 2 examples/tiny.yaml");
  try {
    ::close(open_input_file(o.run_file, "run file"));  // never blocks (a FIFO is refused)
  } catch (const IoError& e) {
    throw ConfigError(e.what());
  }
  return o;
}

std::string nproc_problem(const LaunchOptions& opts, int cores, int slurm_ntasks) {
  if (opts.oversubscribe) return "";
  const int slots = std::max(cores, slurm_ntasks);
  if (opts.nproc <= static_cast<long long>(kMaxRanksPerCore) * slots) return "";
  const std::string have = slurm_ntasks > cores
                               ? str_cat("the ", slurm_ntasks, " tasks of this Slurm allocation (SLURM_NTASKS)")
                               : str_cat("this machine's ", cores, " usable cores");
  return str_cat("launch --nproc ", opts.nproc, " is far more ranks than ", have, " (more than ", kMaxRanksPerCore,
                 " per core): each rank is a process with its own copy of the model, and mpirun would start all ",
                 opts.nproc, " here and stall the machine. Use --nproc ", kMaxRanksPerCore * slots,
                 " or fewer (and parallel.data / parallel.sequence to match), run across machines with mpirun "
                 "--hostfile or srun (see the README's Starting the ranks), or add --oversubscribe to lintrain "
                 "launch if you mean it");
}

std::string threads_per_rank_problem(const LaunchOptions& opts, int run_threads, int cores) {
  const int k = opts.threads_per_rank;
  if (k <= 0) return "";
  const int per_rank = std::max(1, cores / std::max(1, opts.nproc));
  // The ranks' own limit (launch/preflight.cpp threads_per_rank): twice the cores.
  if (k > 2 * cores)
    return str_cat("launch --threads-per-rank ", k, " is far above this machine's ", cores,
                   " usable cores (at most ", 2 * cores, " is accepted); use --threads-per-rank ", per_rank,
                   " (the cores per rank), or leave it out to let lintrain choose");
  // Each rank takes run.threads over OMP_NUM_THREADS, so the flag would be
  // silently overridden.
  if (run_threads > 0 && run_threads != k)
    return str_cat("launch --threads-per-rank ", k, " but the run sets run.threads = ", run_threads,
                   ", which each rank would use instead; drop --threads-per-rank, or set run.threads to ", k,
                   " (or to 0, so that --threads-per-rank decides)");
  return "";
}

std::vector<std::string> mpirun_command(const LaunchOptions& opts, const std::string& mpirun,
                                        const std::string& self, int cores, bool as_root,
                                        const std::string& openblas_coretype,
                                        const std::vector<std::string>& exports) {
  const int threads = opts.threads_per_rank > 0 ? opts.threads_per_rank : std::max(1, cores / opts.nproc);
  std::vector<std::string> cmd = {mpirun, "-np", std::to_string(opts.nproc)};
  if (as_root) cmd.push_back("--allow-run-as-root");
  // --oversubscribe: more ranks than cores is allowed (a laptop trying N=4 on
  // 2 cores). --bind-to none: each rank runs K OpenMP threads, which binding a
  // rank to one core would squeeze onto that core.
  for (const char* a : {"--oversubscribe", "--bind-to", "none", "-x"}) cmd.push_back(a);
  cmd.push_back("OMP_NUM_THREADS=" + std::to_string(threads));
  if (!openblas_coretype.empty()) {
    cmd.push_back("-x");
    cmd.push_back("OPENBLAS_CORETYPE=" + openblas_coretype);
  }
  for (const std::string& e : exports) {
    cmd.push_back("-x");
    cmd.push_back(e);
  }
  cmd.push_back(self);
  cmd.push_back("train");
  cmd.insert(cmd.end(), opts.train_args.begin(), opts.train_args.end());
  return cmd;
}

std::string shell_join(const std::vector<std::string>& argv) {
  std::string out;
  for (const std::string& a : argv) {
    if (!out.empty()) out += ' ';
    const bool plain = !a.empty() && a.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                         "0123456789_-+=.,/:@%") == std::string::npos;
    if (plain) {
      out += a;
      continue;
    }
    out += '\'';
    for (char c : a) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    out += '\'';
  }
  return out;
}

int run_launch(const LaunchOptions& opts) {
  // The ranks validate the run file too; reading it here reports a bad file
  // once instead of once per rank, and says whether to start a service.
  const RunConfig cfg = load_run_config(opts.run_file, opts.overrides);
  // Checked here, before starting any process: --nproc 99999 must not fork
  // 99999 ranks that each refuse the run.
  const int world = cfg.parallel.sequence * cfg.parallel.data;
  if (opts.nproc != world)
    throw ConfigError(str_cat("launch --nproc ", opts.nproc, " but the run file asks for parallel.sequence x "
                              "parallel.data = ", cfg.parallel.sequence, " x ", cfg.parallel.data, " = ", world,
                              " ranks; use --nproc ", world, ", or set parallel.data (or parallel.sequence) so that "
                              "their product is ", opts.nproc));
  const char* ntasks = std::getenv("SLURM_NTASKS");
  const std::string too_many =
      nproc_problem(opts, usable_cores(), ntasks && std::getenv("SLURM_JOB_ID") ? std::atoi(ntasks) : 0);
  if (!too_many.empty()) throw ConfigError(too_many);
  const std::string threads = threads_per_rank_problem(opts, cfg.run.threads, usable_cores());
  if (!threads.empty()) throw ConfigError(threads);
  const std::string mpirun = find_on_path("mpirun");
  if (mpirun.empty())
    throw Error("mpirun not found on PATH; lintrain launch needs Open MPI: install the Debian package "
                "openmpi-bin (apt-get install openmpi-bin, or run scripts/install-deps.sh)");
  check_open_mpi(mpirun);
  check_tmpdir();  // mpirun and every rank keep session files there
  const std::string self = self_exe();
  std::unique_ptr<LocalService> service;
  std::vector<std::string> exports;
  if (cfg.checkpoint.service == "local") {
    service = std::make_unique<LocalService>(self, cfg.checkpoint.resolved_dir(cfg.run.out_dir),
                                             cfg.checkpoint.token_file);
    exports.push_back(str_cat(kServiceEnv, "=", service->address()));
  }
  const char* coretype = std::getenv("OPENBLAS_CORETYPE");
  const std::vector<std::string> cmd =
      mpirun_command(opts, mpirun, self, usable_cores(), geteuid() == 0, coretype ? coretype : "", exports);

  std::printf("lintrain launch: %s\n", shell_join(cmd).c_str());
  std::fflush(stdout);
  std::fflush(stderr);

  std::vector<char*> child_argv;
  for (const std::string& a : cmd) child_argv.push_back(const_cast<char*>(a.c_str()));
  child_argv.push_back(nullptr);

  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) throw Error(str_cat("cannot start mpirun: fork: ", std::strerror(errno)));
  if (pid == 0) {
    // The job ends with the launcher, even when it is killed with SIGKILL:
    // mpirun gets SIGTERM and ends the ranks (its orderly kill: SIGTERM, then
    // SIGKILL). The next link is in the ranks (launch/main.cpp): each rank
    // dies with its parent, so mpirun itself dying (SIGKILL, OOM) leaves no
    // orphan either. A process group of its own: a terminal's Ctrl-C goes
    // to the launcher alone, which turns it into a checkpoint and exit 75
    // (see forward_signal). Its stdin is /dev/null: mpirun would forward the
    // terminal to rank 0, and reading it from outside the terminal's
    // foreground group would stop it (SIGTTIN).
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(1);
    setpgid(0, 0);
    const int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null_fd >= 0) dup2(null_fd, STDIN_FILENO);
    execv(child_argv[0], child_argv.data());
    std::fprintf(stderr, "lintrain: error: cannot run %s: %s\n", child_argv[0], std::strerror(errno));
    _exit(127);
  }
  setpgid(pid, pid);  // as the child does: whichever runs first, no Ctrl-C reaches mpirun
  g_child = pid;
  g_terms = 0;
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = forward_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  struct sigaction old_int, old_term, old_hup, old_usr1;
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  sigaction(SIGHUP, &sa, &old_hup);
  sigaction(SIGUSR1, &sa, &old_usr1);

  // Wait for mpirun; a service that dies meanwhile is started again.
  int status = 0;
  int wait_errno = 0;
  while (true) {
    int st = 0;
    const pid_t r = waitpid(-1, &st, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      wait_errno = errno;
      break;
    }
    if (r == pid) {
      status = st;
      break;
    }
    if (service && r == service->pid()) service->restart(st);
  }
  g_child = 0;
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  sigaction(SIGHUP, &old_hup, nullptr);
  sigaction(SIGUSR1, &old_usr1, nullptr);
  if (service) service->stop();
  if (wait_errno != 0) throw Error(str_cat("waiting for mpirun failed: ", std::strerror(wait_errno)));
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

}  // namespace lintrain
