// The `lintrain` command: parses the command line (one CLI11 App for every
// command, launch/cli.h; `lintrain --help` and `lintrain CMD --help` list
// them) and runs the command:
//   launch   N ranks on this machine via mpirun (launch/launcher.h)
//   train    train the model of a run file (one process, or one rank of a job)
//   config   print the resolved run file; --doc: the table of every option
//   memory   optimizer groups and state bytes of the run; --table: the README's table
//   plan     per-rank memory, communication and FLOPs without running (launch/plan.h)
//   ckpt     serve|ls|verify|export: the checkpoint service and tools (launch/ckpt_cli.h)
// `lintrain --version` prints the version, the git commit and what the build
// found (launch/build_info.h).
// Errors print one line "lintrain: error: ..." and exit 1; command-line usage
// errors print "lintrain: ..." with the command's --help and exit 2.
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "launch/build_info.h"
#include "launch/ckpt_cli.h"
#include "launch/cli.h"
#include "launch/launcher.h"
#include "launch/memory_report.h"
#include "launch/plan.h"
#include "launch/stop_signals.h"
#include "launch/preflight.h"
#include "launch/trainer.h"
#include "parallel/mpi_communicator.h"
#include "runtime/cpu/gemm.h"
#include "runtime/config/config.h"
#include "runtime/error.h"

namespace {

// A count of --nodes / --gpus-per-node: a whole number from 1 to 1e6.
int positive_count(const std::string& option, const std::string& value) {
  char* end = nullptr;
  const long n = std::strtol(value.c_str(), &end, 10);
  if (end == value.c_str() || *end != '\0' || n < 1 || n > 1000000)
    throw lintrain::UsageError(option + " needs a whole number from 1 to 1000000; got '" + value + "'");
  return static_cast<int>(n);
}

// The name (comm) of this process's parent, "" when unreadable.
std::string parent_name() {
  std::ifstream in("/proc/" + std::to_string(getppid()) + "/comm");
  std::string name;
  std::getline(in, name);
  return name;
}

// No orphaned ranks. A rank started by a job launcher dies with it: the
// launcher (mpirun, orted, slurmstepd) is the one that tears the job down,
// so once it is gone, by SIGKILL or the OOM killer, nothing would stop this
// rank from training on unseen, holding its cores and memory. The kernel
// sends SIGKILL (not SIGTERM: the trainer takes SIGTERM as "checkpoint and
// stop", which needs collectives and an MPI_Finalize that cannot work without
// the launcher) the moment the parent goes; getppid() after arming catches a
// parent that died just before. `lintrain launch` adds the link above:
// mpirun gets SIGTERM when the launcher dies and ends the ranks itself.
// Only for ranks: Open MPI's launchers put OMPI_COMM_WORLD_SIZE in each
// rank's environment, PMIx and MPICH's hydra PMIX_RANK / PMI_RANK, and an
// srun task's parent is slurmstepd. A `lintrain train` started from a shell
// (nohup, tmux) has none of these and keeps running when its shell goes.
// (The kernel's signal follows the parent *thread* that forked: these
// launchers fork their ranks from their main thread, which lives as long as
// they do.)
void die_with_launcher() {
  const bool rank = std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMIX_RANK") || std::getenv("PMI_RANK") ||
                    parent_name() == "slurmstepd";
  if (!rank) return;
  const pid_t parent = getppid();
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) return;
  if (getppid() != parent) {
    std::fprintf(stderr, "lintrain: error: the launcher of this rank (pid %d) is gone; exiting\n",
                 static_cast<int>(parent));
    std::_Exit(1);
  }
}

// What an error says to the user. lintrain's own errors name the key or file
// and the fix already; the standard library's few that can escape (memory,
// sizes, the file system) get the context they lack, never their bare text.
std::string error_text(const std::exception& e) {
  if (dynamic_cast<const std::bad_alloc*>(&e))
    return "out of memory: an allocation failed (std::bad_alloc). The run's memory was estimated to fit before it "
           "started, so this machine's free memory shrank or a size in the run is larger than estimated; lower "
           "train.micro_batch or data.seq_len, or free memory (other processes, a cgroup or ulimit -v limit)";
  if (dynamic_cast<const std::length_error*>(&e))
    return lintrain::str_cat("a size in this run is too large to allocate (std::length_error: ", e.what(),
                             "); lower the model.*, data.seq_len or train.* sizes");
  if (const auto* fe = dynamic_cast<const std::filesystem::filesystem_error*>(&e)) {
    std::string paths = fe->path1().empty() ? "" : lintrain::str_cat(" '", fe->path1().string(), "'");
    if (!fe->path2().empty()) paths += lintrain::str_cat(" and '", fe->path2().string(), "'");
    return lintrain::str_cat("file system error on", paths.empty() ? " a path" : paths, ": ", fe->code().message(),
                             "; check that the path exists, is writable and the disk is not full");
  }
  return e.what();
}

void print_warnings(const lintrain::RunConfig& cfg) {
  for (const std::string& w : cfg.warnings) std::fprintf(stderr, "lintrain: warning: %s\n", w.c_str());
}

// The run file, checked for everything config, memory and train refuse
// before training starts (the optimizer's plan on the model's shapes too).
lintrain::RunConfig load_checked(const lintrain::RunFileArgs& args) {
  lintrain::RunConfig cfg = lintrain::load_run_config(args.file, args.overrides);
  lintrain::check_optimizer_plan(cfg);
  return cfg;
}

// `lintrain train`. A stop signal during start-up (MPI, the run file) is
// answered at the first step, not by dying. MPI first: under mpirun/srun
// every rank joins the job; started alone, this process is a world of one.
int run_train(const lintrain::RunFileArgs& args, int* argc, char*** argv) {
  if (args.file.empty()) throw lintrain::UsageError("train needs a run file, e.g. lintrain train examples/tiny.yaml");
  lintrain::install_stop_signals();
  die_with_launcher();
  lintrain::check_tmpdir();           // MPI_Init needs it, and fails in Open MPI's words
  lintrain::check_file_size_limit();  // likewise
  lintrain::MpiRuntime mpi(argc, argv);
  try {
    const lintrain::RunConfig cfg = lintrain::load_run_config(args.file, args.overrides);
    if (mpi.rank() == 0) print_warnings(cfg);
    lintrain::TrainOptions opts;
    opts.init_from = args.init_from;
    opts.local_ranks = mpi.local_size();
    opts.local_rank = mpi.local_rank();
    auto world = mpi.world();
    const lintrain::TrainResult r = lintrain::train(cfg, opts, *world);
    return r.stopped_by_signal ? lintrain::kExitPreempted : 0;
  } catch (const std::exception& e) {
    if (mpi.size() == 1) throw;
    // Every rank's error reaches the user, then the whole job goes down
    // instead of leaving the other ranks waiting in a collective.
    std::fprintf(stderr, "lintrain: error (rank %d on %s): %s\n", mpi.rank(), mpi.host().c_str(),
                 error_text(e).c_str());
    std::fflush(stderr);
    lintrain::MpiRuntime::abort(1);
  }
}

int run_config(const lintrain::CommandLine& cl) {
  if (cl.doc) {
    if (!cl.run.file.empty() || !cl.run.overrides.empty())
      throw lintrain::UsageError("config --doc prints the table of every option and takes no run file or --set");
    std::fputs(lintrain::config_reference_markdown().c_str(), stdout);
    return 0;
  }
  if (cl.run.file.empty()) throw lintrain::UsageError("config needs a run file or --doc");
  const lintrain::RunConfig cfg = load_checked(cl.run);
  print_warnings(cfg);
  std::fputs(lintrain::config_to_yaml(cfg).c_str(), stdout);
  return 0;
}

int run_memory(const lintrain::CommandLine& cl) {
  if (cl.table) {
    if (!cl.run.file.empty() || !cl.run.overrides.empty())
      throw lintrain::UsageError("memory --table prints the optimizer-state table and takes no run file or --set");
    std::fputs(lintrain::optimizer_memory_table().c_str(), stdout);
    return 0;
  }
  if (cl.run.file.empty()) throw lintrain::UsageError("memory needs a run file or --table");
  const lintrain::RunConfig cfg = load_checked(cl.run);
  print_warnings(cfg);
  std::fputs(lintrain::run_memory_report(cfg).c_str(), stdout);
  return 0;
}

int run_plan(const lintrain::CommandLine& cl) {
  if (cl.run.file.empty()) throw lintrain::UsageError("plan needs a run file, e.g. lintrain plan examples/tiny.yaml");
  lintrain::PlanOptions opts;
  if (!cl.plan.device_memory.empty()) opts.device_memory = lintrain::parse_memory_size(cl.plan.device_memory);
  if (cl.plan.nodes.empty() != cl.plan.gpus_per_node.empty())
    throw lintrain::UsageError("plan: give --nodes and --gpus-per-node together (the world is their product)");
  if (!cl.plan.nodes.empty()) {
    opts.nodes = positive_count("--nodes", cl.plan.nodes);
    opts.gpus_per_node = positive_count("--gpus-per-node", cl.plan.gpus_per_node);
  }
  const lintrain::RunConfig cfg = load_checked(cl.run);
  print_warnings(cfg);
  std::fputs(lintrain::format_plan(cfg, opts).c_str(), stdout);
  return 0;
}

int run_command(const lintrain::CommandLine& cl, int* argc, char*** argv) {
  const std::string& cmd = cl.command;
  if (cmd == "launch") return lintrain::run_launch(lintrain::launch_options(cl.launch, cl.run));
  if (cmd == "train") return run_train(cl.run, argc, argv);
  if (cmd == "config") return run_config(cl);
  if (cmd == "memory") return run_memory(cl);
  if (cmd == "plan") return run_plan(cl);
  return lintrain::run_ckpt(cmd.substr(cmd.find(' ') + 1), cl.ckpt);  // "ckpt ls" -> ls
}

}  // namespace

int main(int argc, char** argv) {
  // A write past the file-size limit (ulimit -f) fails with EFBIG, which the
  // writers report with the limit and its fix, instead of SIGXFSZ killing the
  // process without a word. Inherited by mpirun and the ranks it starts.
  std::signal(SIGXFSZ, SIG_IGN);
  lintrain::select_blas_kernels(argc, argv);
  lintrain::CommandLine cl;
  try {
    cl = lintrain::parse_command_line(std::vector<std::string>(argv, argv + argc),
                                      lintrain::version_text(lintrain::build_info()));
  } catch (const lintrain::UsageError& e) {
    std::fprintf(stderr, "lintrain: %s\n", e.what());
    return 2;
  }
  if (cl.command.empty()) {  // --help, --version, or no command (the help, to stderr)
    std::fputs(cl.text.c_str(), cl.exit_code == 0 ? stdout : stderr);
    return cl.exit_code;
  }
  try {
    return run_command(cl, &argc, &argv);
  } catch (const lintrain::UsageError& e) {
    std::fprintf(stderr, "lintrain: %s (see lintrain %s --help)\n", e.what(), cl.command.c_str());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lintrain: error: %s\n", error_text(e).c_str());
    return 1;
  }
}
