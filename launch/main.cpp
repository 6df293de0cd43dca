// The `lintrain` command. Subcommands:
//   lintrain launch --nproc N RUN.yaml [...]  N ranks on this machine via mpirun
//   lintrain train RUN.yaml [--set section.key=value]... [--init-from FILE]
//   lintrain config RUN.yaml [--set ...]     print the resolved run file
//   lintrain config --doc                    print the table of every option
//   lintrain memory RUN.yaml [--set ...]     optimizer groups and state bytes of the run
//   lintrain memory --table                  the README's optimizer-memory table
//   lintrain plan RUN.yaml [--set ...] [--device-memory SIZE] [--nodes N --gpus-per-node G]
//                                            per-rank memory, communication and FLOPs without running (launch/plan.h)
//   lintrain ckpt serve|ls|verify|export ...  the checkpoint service and tools (launch/ckpt_cli.h)
// Errors print one line "lintrain: error: ..." and exit 1; usage errors exit 2.
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "launch/ckpt_cli.h"
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

constexpr const char* kUsage =
    "usage: lintrain <command> [options]\n"
    "\n"
    "commands:\n"
    "  launch --nproc N [--threads-per-rank K] [--oversubscribe] RUN.yaml [--set KEY=VALUE]... [--init-from FILE]\n"
    "        run N ranks on this machine under mpirun (prints the mpirun command)\n"
    "  train RUN.yaml [--set KEY=VALUE]... [--init-from FILE.safetensors]\n"
    "        train the model the run file describes (one process)\n"
    "  config RUN.yaml [--set KEY=VALUE]...\n"
    "        validate the run file and print it with every default filled in\n"
    "  config --doc\n"
    "        print the Markdown table of every run-file option\n"
    "  memory RUN.yaml [--set KEY=VALUE]...\n"
    "        print the run's optimizer parameter groups and optimizer-state bytes\n"
    "  memory --table\n"
    "        print the optimizer-state table of every optimizer on the LLaMA 60M-1B shapes\n"
    "  plan RUN.yaml [--set KEY=VALUE]... [--device-memory SIZE] [--nodes N --gpus-per-node G]\n"
    "        per rank, without running: parameters, gradients, optimizer state, activations by layer kind,\n"
    "        bytes per collective per step, FLOPs per token, whether it fits, the smallest SP that fits\n"
    "  ckpt serve --dir DIR [--listen HOST:PORT] [--token-file FILE] [--stale-after S] [--ready-file FILE]\n"
    "        run the checkpoint service for DIR (loopback 127.0.0.1:7070 by default)\n"
    "  ckpt ls DIR|HOST:PORT [--token-file FILE]\n"
    "        list checkpoints: step, time, size, layout, complete or not\n"
    "  ckpt verify PATH\n"
    "        check every file and checksum of a checkpoint (or of every one in a directory)\n"
    "  ckpt export PATH --out DIR\n"
    "        write model.safetensors + config.json of a checkpoint (a directory: its newest)\n"
    "\n"
    "KEY is section.key as in the run file, e.g. --set train.steps=50\n";

struct Args {
  std::string file;
  std::vector<std::string> overrides;
  std::string init_from;
  bool doc = false;
  bool table = false;
  std::string device_memory;  // plan only
  std::string nodes, gpus_per_node;
};

[[noreturn]] void usage_error(const std::string& msg) {
  std::fprintf(stderr, "lintrain: %s\n\n%s", msg.c_str(), kUsage);
  std::exit(2);
}

// What each of train, config and memory takes: an option it does not take
// would be ignored, so it is a usage error naming the option and the command.
const char* command_takes(const std::string& cmd) {
  if (cmd == "train") return "RUN.yaml [--set KEY=VALUE]... [--init-from FILE]";
  if (cmd == "config") return "RUN.yaml [--set KEY=VALUE]..., or --doc";
  if (cmd == "plan") return "RUN.yaml [--set KEY=VALUE]... [--device-memory SIZE] [--nodes N --gpus-per-node G]";
  return "RUN.yaml [--set KEY=VALUE]..., or --table";
}

bool command_takes_option(const std::string& cmd, const std::string& option) {
  return option == "--set" || (option == "--init-from" && cmd == "train") || (option == "--doc" && cmd == "config") ||
         (option == "--table" && cmd == "memory") ||
         (cmd == "plan" && (option == "--device-memory" || option == "--nodes" || option == "--gpus-per-node"));
}

// The command line of train, config and memory. Options take their value as
// the next argument or after '=' (--set=KEY=VALUE); a value that is empty or
// is itself an option (`--init-from --set ...`) is refused, not swallowed.
Args parse_args(const std::string& cmd, int argc, char** argv, int first) {
  Args a;
  for (int i = first; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.empty() || arg[0] != '-') {
      if (!a.file.empty()) usage_error("unexpected argument '" + arg + "' (one run file only)");
      a.file = arg;
      continue;
    }
    const size_t eq = arg.rfind("--", 0) == 0 ? arg.find('=') : std::string::npos;
    const std::string option = arg.substr(0, eq);
    if (option != "--set" && option != "--init-from" && option != "--doc" && option != "--table" &&
        option != "--device-memory" && option != "--nodes" && option != "--gpus-per-node")
      usage_error("unknown option '" + arg + "'; " + cmd + " takes " + command_takes(cmd));
    if (!command_takes_option(cmd, option))
      usage_error(cmd + " does not take " + option + "; it takes " + command_takes(cmd));
    if (option == "--doc" || option == "--table") {
      if (eq != std::string::npos) usage_error(option + " takes no value; got '" + arg + "'");
      (option == "--doc" ? a.doc : a.table) = true;
      continue;
    }
    const char* want = option == "--set"             ? "KEY=VALUE"
                       : option == "--init-from"     ? "a file"
                       : option == "--device-memory" ? "a size such as 80GiB"
                                                     : "a count";
    if (eq == std::string::npos && i + 1 >= argc) usage_error(option + " needs " + want);
    const std::string value = eq != std::string::npos ? arg.substr(eq + 1) : argv[++i];
    if (value.empty()) usage_error(option + " needs " + want + "; got an empty value");
    if (value.rfind("--", 0) == 0) usage_error(option + " needs " + want + "; got the option '" + value + "'");
    if (option == "--set") {
      a.overrides.push_back(value);
    } else if (option != "--init-from") {
      std::string& slot = option == "--device-memory" ? a.device_memory : option == "--nodes" ? a.nodes : a.gpus_per_node;
      if (!slot.empty()) usage_error(option + " is given twice ('" + slot + "' and '" + value + "')");
      slot = value;
    } else {
      if (!a.init_from.empty())
        usage_error("--init-from is given twice ('" + a.init_from + "' and '" + value + "'); give one file");
      a.init_from = value;
    }
  }
  if (a.doc && (!a.file.empty() || !a.overrides.empty()))
    usage_error("config --doc prints the table of every option and takes no run file or --set");
  if (a.table && (!a.file.empty() || !a.overrides.empty()))
    usage_error("memory --table prints the optimizer-state table and takes no run file or --set");
  return a;
}

// A count of --nodes / --gpus-per-node: a whole number from 1 to 1e6.
int positive_count(const std::string& option, const std::string& value) {
  char* end = nullptr;
  const long n = std::strtol(value.c_str(), &end, 10);
  if (end == value.c_str() || *end != '\0' || n < 1 || n > 1000000)
    usage_error(option + " needs a whole number from 1 to 1000000; got '" + value + "'");
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
lintrain::RunConfig load_checked(const Args& args) {
  lintrain::RunConfig cfg = lintrain::load_run_config(args.file, args.overrides);
  lintrain::check_optimizer_plan(cfg);
  return cfg;
}

}  // namespace

int main(int argc, char** argv) {
  // A write past the file-size limit (ulimit -f) fails with EFBIG, which the
  // writers report with the limit and its fix, instead of SIGXFSZ killing the
  // process without a word. Inherited by mpirun and the ranks it starts.
  std::signal(SIGXFSZ, SIG_IGN);
  lintrain::select_blas_kernels(argc, argv);
  if (argc < 2 || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "--help") ||
      !std::strcmp(argv[1], "help")) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const std::string cmd = argv[1];
  try {
    if (cmd == "launch") return lintrain::run_launch(argc, argv);
    if (cmd == "ckpt") return lintrain::run_ckpt(argc, argv);
    if (cmd != "train" && cmd != "config" && cmd != "memory" && cmd != "plan") usage_error("unknown command '" + cmd + "'");
    const Args args = parse_args(cmd, argc, argv, 2);
    if (cmd == "train") {
      if (args.file.empty()) usage_error("train needs a run file, e.g. lintrain train examples/tiny.yaml");
      // A stop signal during start-up (MPI, the run file) is answered at the
      // first step, not by dying. MPI first: under mpirun/srun every rank
      // joins the job; started alone, this process is a world of one.
      lintrain::install_stop_signals();
      die_with_launcher();
      lintrain::check_tmpdir();  // MPI_Init needs it, and fails in Open MPI's words
      lintrain::check_file_size_limit();  // likewise
      lintrain::MpiRuntime mpi(&argc, &argv);
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
    if (cmd == "config") {
      if (args.doc) {
        std::fputs(lintrain::config_reference_markdown().c_str(), stdout);
        return 0;
      }
      if (args.file.empty()) usage_error("config needs a run file or --doc");
      const lintrain::RunConfig cfg = load_checked(args);
      print_warnings(cfg);
      std::fputs(lintrain::config_to_yaml(cfg).c_str(), stdout);
      return 0;
    }
    if (cmd == "memory") {
      if (args.table) {
        std::fputs(lintrain::optimizer_memory_table().c_str(), stdout);
        return 0;
      }
      if (args.file.empty()) usage_error("memory needs a run file or --table");
      const lintrain::RunConfig cfg = load_checked(args);
      print_warnings(cfg);
      std::fputs(lintrain::run_memory_report(cfg).c_str(), stdout);
      return 0;
    }
    if (cmd == "plan") {
      if (args.file.empty()) usage_error("plan needs a run file, e.g. lintrain plan examples/tiny.yaml");
      lintrain::PlanOptions opts;
      if (!args.device_memory.empty()) opts.device_memory = lintrain::parse_memory_size(args.device_memory);
      if (args.nodes.empty() != args.gpus_per_node.empty())
        usage_error("plan: give --nodes and --gpus-per-node together (the world is their product)");
      if (!args.nodes.empty()) {
        opts.nodes = positive_count("--nodes", args.nodes);
        opts.gpus_per_node = positive_count("--gpus-per-node", args.gpus_per_node);
      }
      const lintrain::RunConfig cfg = load_checked(args);
      print_warnings(cfg);
      std::fputs(lintrain::format_plan(cfg, opts).c_str(), stdout);
      return 0;
    }
  } catch (const lintrain::UsageError& e) {
    usage_error(e.what());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lintrain: error: %s\n", error_text(e).c_str());
    return 1;
  }
}
