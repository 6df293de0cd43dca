// `lintrain launch` argument handling (through the one command-line parser,
// launch/cli.h) and the mpirun command it builds. The command actually running
// ranks is tested end to end by tests/e2e/test_launch.sh.
#include <gtest/gtest.h>

#include <filesystem>

#include <algorithm>
#include <string>
#include <vector>

#include "launch/launcher.h"
#include "runtime/error.h"

namespace {

const std::string kRunFile = std::string(LINTRAIN_TEST_DIR) + "/../examples/tiny.yaml";

lintrain::LaunchOptions parse(std::vector<std::string> args) {
  args.insert(args.begin(), {"lintrain", "launch"});
  const lintrain::CommandLine cl = lintrain::parse_command_line(args, "");
  EXPECT_EQ(cl.command, "launch");
  return lintrain::launch_options(cl.launch, cl.run);
}

// The message of a command line that does not parse (UsageError, exit 2) or
// does not make a launch (ConfigError, exit 1).
std::string parse_error(std::vector<std::string> args) {
  try {
    parse(std::move(args));
  } catch (const lintrain::Error& e) {
    return e.what();
  }
  return "(no error)";
}

bool is_usage_error(std::vector<std::string> args) {
  try {
    parse(std::move(args));
  } catch (const lintrain::UsageError&) {
    return true;
  } catch (const lintrain::Error&) {
  }
  return false;
}

// The run file, every --set in order and --init-from reach the ranks' train;
// launch's own options do not.
TEST(Launcher, ForwardsTheRunFileAndItsOptionsToTrainInOrder) {
  const auto o = parse({"--nproc", "4", kRunFile, "--set", "train.steps=3", "--threads-per-rank=2",
                        "--init-from", "w.safetensors", "--set=optim.lr=0.01"});
  EXPECT_EQ(o.nproc, 4);
  EXPECT_EQ(o.threads_per_rank, 2);
  EXPECT_EQ(o.run_file, kRunFile);
  const std::vector<std::string> want = {kRunFile, "--set", "train.steps=3", "--set", "optim.lr=0.01",
                                         "--init-from", "w.safetensors"};
  EXPECT_EQ(o.train_args, want);
  const std::vector<std::string> overrides = {"train.steps=3", "optim.lr=0.01"};
  EXPECT_EQ(o.overrides, overrides);
}

TEST(Launcher, ASetValueIsNotTakenForTheRunFile) {
  const auto o = parse({"--nproc=2", "--set", "train.steps=3", kRunFile});
  EXPECT_EQ(o.run_file, kRunFile);
}

TEST(Launcher, RejectsBadArgumentsWithOneClearLine) {
  EXPECT_EQ(parse_error({"--nproc", "0", kRunFile}), "--nproc needs a positive whole number, got '0' (e.g. --nproc 2)");
  EXPECT_NE(parse_error({"--nproc", "two", kRunFile}).find("got 'two'"), std::string::npos);
  EXPECT_NE(parse_error({"--nproc", "2", "--threads-per-rank", "-1", kRunFile}).find("--threads-per-rank"),
            std::string::npos);
  EXPECT_NE(parse_error({kRunFile}).find("launch needs the number of ranks"), std::string::npos);
  EXPECT_NE(parse_error({"--nproc", "2"}).find("launch needs a run file"), std::string::npos);
  EXPECT_NE(parse_error({"--nproc"}).find("--nproc needs a count; none was given"), std::string::npos);
  // What train would refuse is refused here, before any rank starts (it was
  // handed to every rank, which each failed on it).
  EXPECT_NE(parse_error({"--nproc", "2", kRunFile, "--frobnicate"}).find("unknown option '--frobnicate'; launch takes"),
            std::string::npos);
  EXPECT_NE(parse_error({"--nproc", "2", kRunFile, "--init-from", "--set", "a=1"})
                .find("--init-from needs a file; got the option '--set'"),
            std::string::npos);
  EXPECT_NE(parse_error({"--nproc", "2", kRunFile, "other.yaml"}).find("but was also given 'other.yaml'"),
            std::string::npos);
  // Which are usage errors (exit 2); the values of launch's own options and
  // the run file are checked by launch (exit 1, as before).
  EXPECT_TRUE(is_usage_error({"--nproc"}));
  EXPECT_TRUE(is_usage_error({"--nproc", "2", kRunFile, "--frobnicate"}));
  EXPECT_FALSE(is_usage_error({"--nproc", "0", kRunFile}));
  EXPECT_FALSE(is_usage_error({kRunFile}));
  EXPECT_EQ(parse_error({"--nproc", "2", "no/such/run.yaml"}), "run file 'no/such/run.yaml' does not exist (relative to the working directory " +
                std::filesystem::current_path().string() + "); check the path");
}

TEST(Launcher, BuildsTheMpirunCommand) {
  const auto o = parse({"--nproc", "2", kRunFile, "--set", "train.steps=3"});
  const std::vector<std::string> want = {
      "/usr/bin/mpirun", "-np", "2", "--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "-x",
      "OMP_NUM_THREADS=4", "-x", "OPENBLAS_CORETYPE=Haswell", "/opt/lintrain", "train", kRunFile, "--set",
      "train.steps=3"};
  EXPECT_EQ(lintrain::mpirun_command(o, "/usr/bin/mpirun", "/opt/lintrain", 8, true, "Haswell"), want);
  // The checkpoint service's address (checkpoint.service: local) reaches the ranks with -x.
  std::vector<std::string> with_service = want;
  with_service.insert(with_service.begin() + 11, {"-x", "LINTRAIN_CKPT_SERVICE=127.0.0.1:4000"});
  EXPECT_EQ(lintrain::mpirun_command(o, "/usr/bin/mpirun", "/opt/lintrain", 8, true, "Haswell",
                                     {"LINTRAIN_CKPT_SERVICE=127.0.0.1:4000"}),
            with_service);

  const auto cmd = lintrain::mpirun_command(o, "mpirun", "lintrain", 8, false, "");
  EXPECT_EQ(std::count(cmd.begin(), cmd.end(), "--allow-run-as-root"), 0);
  EXPECT_EQ(std::count(cmd.begin(), cmd.end(), "OMP_NUM_THREADS=4"), 1);
  EXPECT_EQ(std::count_if(cmd.begin(), cmd.end(),
                          [](const std::string& a) { return a.rfind("OPENBLAS_CORETYPE", 0) == 0; }),
            0);
}

TEST(Launcher, ThreadsPerRankDefaultsToCoresOverRanksAtLeastOne) {
  auto threads = [](int nproc, int threads_per_rank, int cores) {
    lintrain::LaunchOptions o;
    o.nproc = nproc;
    o.threads_per_rank = threads_per_rank;
    const auto cmd = lintrain::mpirun_command(o, "mpirun", "lintrain", cores, false, "");
    for (const auto& a : cmd)
      if (a.rfind("OMP_NUM_THREADS=", 0) == 0) return std::stoi(a.substr(16));
    return -1;
  };
  EXPECT_EQ(threads(2, 0, 2), 1);
  EXPECT_EQ(threads(3, 0, 8), 2);
  EXPECT_EQ(threads(4, 0, 2), 1);  // more ranks than cores: still one thread each
  EXPECT_EQ(threads(4, 3, 2), 3);  // an explicit --threads-per-rank wins
}

// --nproc 100000 on 2 cores made mpirun fork 100000 ranks and the machine stall.
TEST(Launcher, RefusesRanksFarAboveTheCoresUnlessOversubscribing) {
  auto problem = [](int nproc, int cores, int slurm_ntasks, bool oversubscribe = false) {
    lintrain::LaunchOptions o;
    o.nproc = nproc;
    o.oversubscribe = oversubscribe;
    return lintrain::nproc_problem(o, cores, slurm_ntasks);
  };
  EXPECT_EQ(problem(2, 2, 0), "");
  EXPECT_EQ(problem(8, 2, 0), "");  // a laptop trying 4 ranks a core still may
  const std::string msg = problem(100000, 2, 0);
  EXPECT_NE(msg.find("launch --nproc 100000"), std::string::npos) << msg;
  EXPECT_NE(msg.find("this machine's 2 usable cores"), std::string::npos) << msg;
  EXPECT_NE(msg.find("Use --nproc 8 or fewer"), std::string::npos) << msg;
  EXPECT_NE(msg.find("--oversubscribe"), std::string::npos) << msg;
  EXPECT_NE(problem(9, 2, 0), "");
  EXPECT_EQ(problem(100000, 2, 0, /*oversubscribe=*/true), "");
  // Inside a Slurm allocation mpirun spreads the ranks over its tasks' nodes.
  EXPECT_EQ(problem(64, 2, 64), "");
  EXPECT_NE(problem(1000, 2, 64).find("the 64 tasks of this Slurm allocation"), std::string::npos);
  EXPECT_TRUE(parse({"--nproc", "2", "--oversubscribe", kRunFile}).oversubscribe);
  EXPECT_FALSE(parse({"--nproc", "2", kRunFile}).oversubscribe);
  const auto o = parse({"--nproc", "2", "--oversubscribe", kRunFile});
  EXPECT_EQ(o.train_args, std::vector<std::string>{kRunFile});  // a launch option, not train's
}

TEST(Launcher, QuotesForAShellOnlyWhereNeeded) {
  EXPECT_EQ(lintrain::shell_join({"mpirun", "-x", "OMP_NUM_THREADS=1", "/a/b.yaml", "train.steps=3"}),
            "mpirun -x OMP_NUM_THREADS=1 /a/b.yaml train.steps=3");
  EXPECT_EQ(lintrain::shell_join({"a b", "it's", ""}), "'a b' 'it'\\''s' ''");
}

}  // namespace

// --nproc 1 --nproc 2 silently ran 2 ranks; every one-value option and flag
// of every command is refused when given twice, launch's included.
TEST(Launcher, RefusesItsOwnFlagsGivenTwice) {
  EXPECT_EQ(parse_error({"--nproc", "1", "--nproc", "2", kRunFile}),
            "--nproc is given twice ('1' and '2'); give it once (see lintrain launch --help)");
  EXPECT_NE(parse_error({"--nproc=1", "--nproc", "2", kRunFile}).find("--nproc is given twice"), std::string::npos);
  EXPECT_NE(parse_error({"--nproc", "2", "--threads-per-rank", "1", "--threads-per-rank=2", kRunFile})
                .find("--threads-per-rank is given twice"),
            std::string::npos);
  EXPECT_NE(parse_error({"--nproc", "2", "--oversubscribe", "--oversubscribe", kRunFile})
                .find("--oversubscribe is given twice"),
            std::string::npos);
  // --set is train's and may repeat.
  EXPECT_EQ(parse({"--nproc", "2", kRunFile, "--set", "a=1", "--set", "b=2"}).overrides.size(), 2u);
}

// --threads-per-rank 999 passed the launcher and each rank then refused
// OMP_NUM_THREADS; with run.threads in the file it was silently overridden.
TEST(Launcher, RefusesThreadsPerRankFarAboveTheCoresOrOverriddenByRunThreads) {
  lintrain::LaunchOptions o;
  o.nproc = 2;
  EXPECT_EQ(lintrain::threads_per_rank_problem(o, 0, 2), "");  // not given
  o.threads_per_rank = 4;
  EXPECT_EQ(lintrain::threads_per_rank_problem(o, 0, 2), "");  // twice the cores: the ranks' own limit
  EXPECT_EQ(lintrain::threads_per_rank_problem(o, 4, 2), "");  // run.threads agrees
  o.threads_per_rank = 999;
  const std::string far = lintrain::threads_per_rank_problem(o, 0, 2);
  EXPECT_NE(far.find("launch --threads-per-rank 999 is far above this machine's 2 usable cores (at most 4"),
            std::string::npos)
      << far;
  EXPECT_NE(far.find("use --threads-per-rank 1 "), std::string::npos) << far;
  o.threads_per_rank = 2;
  const std::string both = lintrain::threads_per_rank_problem(o, 1, 2);
  EXPECT_NE(both.find("launch --threads-per-rank 2 but the run sets run.threads = 1, which each rank would use"),
            std::string::npos)
      << both;
}
