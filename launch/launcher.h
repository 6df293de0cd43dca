// `lintrain launch`: runs one training job as N ranks on this machine under
// Open MPI's mpirun, so trying a multi-rank run file on a laptop is one command:
//
//   lintrain launch --nproc N [--threads-per-rank K] [--oversubscribe] RUN.yaml [--set KEY=VALUE]... [--init-from FILE]
//
// It starts, as a child process, and prints first as one line that can be
// pasted into a shell:
//
//   mpirun -np N [--allow-run-as-root] --oversubscribe --bind-to none
//          -x OMP_NUM_THREADS=K [-x OPENBLAS_CORETYPE=...] [-x LINTRAIN_CKPT_SERVICE=...]
//          <this binary> train RUN.yaml <the rest>
//
// waits for it, and returns its exit status (128 + signal when mpirun itself
// was killed by a signal), so a dead rank, which makes mpirun end the whole
// job, makes `lintrain launch` fail too. The first SIGTERM sent to the
// launcher, or SIGINT (a Ctrl-C at the terminal), reaches the ranks as
// SIGUSR1 (they save a checkpoint and exit with 75), a second one as it
// came; SIGHUP and SIGUSR1 are passed on. mpirun runs in its own process
// group with stdin from /dev/null, so a Ctrl-C reaches the launcher alone
// (mpirun would kill the ranks on it). mpirun gets SIGTERM when the launcher dies, even by SIGKILL,
// and each rank gets SIGKILL when mpirun dies: no process of the job outlives
// the launcher (tests/e2e/test_orphans.sh).
//
// With checkpoint.service: local in the run file, the launcher first starts
// the checkpoint service for the run (launch/local_service.h) and tells the
// ranks its address through LINTRAIN_CKPT_SERVICE.
//
// The run file and its options (--set, in order, and --init-from) are handed
// to `train`; launch's command line is train's plus its own options (one
// parser, launch/cli.h), so a bad one is refused before anything starts, and
// the launcher reads the run file (and fails on a bad one) first.
// K defaults to max(1, usable cores / N) so the ranks do not oversubscribe
// the machine with OpenMP threads. Cluster runs use mpirun or srun directly
// (examples/slurm/pretrain.sbatch); see launch/README-launch.md.
#pragma once

#include <string>
#include <vector>

#include "launch/cli.h"

namespace lintrain {

struct LaunchOptions {
  int nproc = 0;                        // ranks to start (--nproc), >= 1
  int threads_per_rank = 0;             // OMP_NUM_THREADS per rank; 0 = max(1, cores / nproc)
  bool oversubscribe = false;           // --oversubscribe: allow nproc far above the cores
  std::string run_file;                 // RUN.yaml
  std::vector<std::string> train_args;  // the arguments of each rank's `train`: the run file, --set..., --init-from
  std::vector<std::string> overrides;   // the --set values (KEY=VALUE), in order
};

// Checks the parsed command line of `lintrain launch` (launch/cli.h). Throws
// lintrain::ConfigError with a one-line message on a missing or invalid
// --nproc or --threads-per-rank, or a missing or unreadable run file.
LaunchOptions launch_options(const LaunchArgs& launch, const RunFileArgs& run);

// Ranks per core (or per allocated slot) above which launch refuses --nproc
// unless given --oversubscribe: each rank is a process holding the whole
// model, and thousands of them on a few cores stall the machine.
constexpr int kMaxRanksPerCore = 4;

// Why `nproc` ranks should not be started here, or "" when they may: more
// than kMaxRanksPerCore per usable core, or per slot of a Slurm allocation
// (`slurm_ntasks`, 0 when not in one, mpirun spreads the ranks over its
// nodes), without --oversubscribe. Pure, for tests.
std::string nproc_problem(const LaunchOptions& opts, int usable_cores, int slurm_ntasks);

// Why --threads-per-rank cannot stand ("" when it can): above twice the
// usable cores (the limit each rank applies to OMP_NUM_THREADS), or given
// while the run sets another run.threads (which each rank would use
// instead). Pure, for tests.
std::string threads_per_rank_problem(const LaunchOptions& opts, int run_threads, int usable_cores);

// The mpirun command line (argv[0] is `mpirun`) for `opts`: pure, for tests.
// `self` is the lintrain binary the ranks run; `as_root` adds
// --allow-run-as-root; `openblas_coretype`, when non-empty, is forwarded;
// each of `exports` (KEY=VALUE) is set for the ranks with -x.
std::vector<std::string> mpirun_command(const LaunchOptions& opts, const std::string& mpirun,
                                        const std::string& self, int usable_cores, bool as_root,
                                        const std::string& openblas_coretype,
                                        const std::vector<std::string>& exports = {});

// `argv` joined with spaces, each word quoted for a POSIX shell where needed.
std::string shell_join(const std::vector<std::string>& argv);

// The whole `lintrain launch` command. Returns the exit code for main
// (mpirun's). Throws lintrain::Error (ConfigError for a run that cannot be
// launched) with a message for the user; main prints it and exits 1.
int run_launch(const LaunchOptions& opts);

}  // namespace lintrain
