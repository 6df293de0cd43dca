// The command line of `lintrain`: one CLI11 App with a subcommand per command
// (launch/cli.cpp), which also writes `lintrain --help` and `lintrain CMD
// --help`. Parsing runs nothing: it fills a CommandLine, and main runs the
// command it names.
//
// Every command line that does not parse is a lintrain::UsageError naming the
// option or argument, what was expected and where the command's options are
// listed: an unknown option (or one of another command), an option without
// its value or with an empty one, an option's value that is itself an option
// (`--init-from --set ...`: never swallowed), a one-value option or a flag
// given twice, an argument too many, an unknown command.
#pragma once

#include <string>
#include <vector>

namespace lintrain {

// A run file and the changes to it: train, config, memory, plan and launch.
struct RunFileArgs {
  std::string file;                    // the positional RUN.yaml; "" when not given
  std::vector<std::string> overrides;  // each --set KEY=VALUE, in order
  std::string init_from;               // --init-from FILE (train and launch); "" when not given
};

// plan's options as given ("" when not); main converts and checks them.
struct PlanArgs {
  std::string device_memory, nodes, gpus_per_node;
};

// launch's own options as given; launch_options() (launch/launcher.h) checks them.
struct LaunchArgs {
  std::string nproc, threads_per_rank;  // "" when not given
  bool oversubscribe = false;
};

// The options of the ckpt subcommands as given ("" when not).
struct CkptArgs {
  std::string path;                                              // ls WHERE, verify PATH, export PATH
  std::string dir, listen, token_file, stale_after, ready_file;  // serve (ls: token_file)
  std::string out;                                               // export
};

struct CommandLine {
  // "launch", "train", "config", "memory", "plan", "ckpt serve", "ckpt ls",
  // "ckpt verify" or "ckpt export"; "" when `text` is all there is to do.
  std::string command;
  std::string text;   // --help or --version output, or the usage when no command was given
  int exit_code = 0;  // with `text`: 0 (print it to stdout) or 2 (no command: to stderr)
  RunFileArgs run;
  bool doc = false, table = false;  // config --doc, memory --table
  PlanArgs plan;
  LaunchArgs launch;  // with `run` for the ranks
  CkptArgs ckpt;
};

// Parses `args` (args[0] is the program). `version_text` is what --version
// prints. Throws UsageError with a one-line message for the user.
CommandLine parse_command_line(const std::vector<std::string>& args, const std::string& version_text);

}  // namespace lintrain
