// The CLI11 App of every lintrain command (launch/cli.h). Each option is
// declared once, with its value's name and help; CLI11 writes the help from
// them. CLI11's own errors are reworded in lintrain's form (the option, what
// it needs, the fix), and what CLI11 would only call "not expected" (an
// option of another command, an argument too many) is told apart here, after
// parsing, from the App's own lists: every command keeps its extras
// (allow_extras) for that.
#include "launch/cli.h"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "runtime/error.h"

namespace lintrain {
namespace {

const char* const kSetFooter =
    "KEY is section.key as in the run file, e.g. --set train.steps=50; `lintrain config --doc` lists every key.";

// " (see lintrain ckpt ls --help)": where the options of `path` are listed.
std::string see_help(const std::string& path) {
  return str_cat(" (see lintrain ", path, path.empty() ? "" : " ", "--help)");
}

// "'a' and 'b'", "'a', 'b' and 'c'".
std::string quoted_list(const std::vector<std::string>& values) {
  std::string out;
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += i + 1 == values.size() ? " and " : ", ";
    out += "'" + values[i] + "'";
  }
  return out;
}

class Parser {
 public:
  explicit Parser(const std::string& version_text);
  CommandLine parse(const std::vector<std::string>& args);

 private:
  // An option with one value (given at most once) or a repeatable one
  // (every value kept, in order). `needs` says what the value is ("a file").
  CLI::Option* value(CLI::App* cmd, const std::string& name, std::string* out, const std::string& type,
                     const std::string& needs, const std::string& help);
  CLI::Option* values(CLI::App* cmd, const std::string& name, std::vector<std::string>* out, const std::string& type,
                      const std::string& needs, const std::string& help);
  CLI::Option* flag(CLI::App* cmd, const std::string& name, bool* out, const std::string& help);
  CLI::Option* checked(CLI::Option* opt, const std::string& needs);
  void add_run_file(CLI::App* cmd, bool init_from);
  CLI::App* add_command(CLI::App* parent, const std::string& name, const std::string& help);

  std::string reworded(const CLI::ParseError& e, const CLI::App& cmd, const std::string& path) const;
  void check_extras(const CLI::App& cmd, const std::string& path) const;
  std::string synopsis(const CLI::App& cmd) const;
  std::string command_with_option(const CLI::App& cmd, const std::string& name, const std::string& path) const;

  CLI::App app_{"lintrain trains linear and hybrid attention language models, on one process or on many "
                "(lintrain launch, mpirun, srun).",
                "lintrain"};
  CommandLine cl_;
  std::map<std::string, std::string> needs_;  // option name -> what its value is, for "--out needs a directory"
};

Parser::Parser(const std::string& version_text) {
  app_.set_help_flag("-h,--help", "print this help and exit");  // the commands inherit it
  app_.set_version_flag("--version", version_text, "print the version, the git commit and what the build found");
  app_.allow_extras();
  app_.require_subcommand(0, 1);  // after the command, a command's name is an argument like any other
  app_.footer("Run `lintrain COMMAND --help` for the options of one command.");

  CLI::App* launch = add_command(&app_, "launch",
                                 "run N ranks on this machine under mpirun (prints the mpirun command); the run file "
                                 "and its options go to every rank's `lintrain train`");
  value(launch, "--nproc", &cl_.launch.nproc, "N", "a count",
        "the number of ranks to start (required): parallel.sequence x parallel.data of the run");
  value(launch, "--threads-per-rank", &cl_.launch.threads_per_rank, "K", "a count",
        "OpenMP threads of each rank (OMP_NUM_THREADS); default max(1, usable cores / N)");
  flag(launch, "--oversubscribe", &cl_.launch.oversubscribe,
       "allow more than 4 ranks per core (or per slot of a Slurm allocation)");
  add_run_file(launch, true);

  CLI::App* train = add_command(&app_, "train", "train the model the run file describes (one process, or one rank "
                                                "of a job started by lintrain launch, mpirun or srun)");
  add_run_file(train, true);

  CLI::App* config = add_command(&app_, "config", "validate the run file and print it with every default filled in");
  add_run_file(config, false);
  flag(config, "--doc", &cl_.doc, "print the Markdown table of every run-file option instead (no run file)");

  CLI::App* memory = add_command(&app_, "memory", "print the run's optimizer parameter groups and optimizer-state bytes");
  add_run_file(memory, false);
  flag(memory, "--table", &cl_.table,
       "print the optimizer-state table of every optimizer on the LLaMA 60M-1B shapes instead (no run file)");

  CLI::App* plan = add_command(&app_, "plan",
                               "per rank, without running: memory by kind, bytes per collective per step, FLOPs "
                               "per token, whether it fits, the smallest SP that fits");
  add_run_file(plan, false);
  value(plan, "--device-memory", &cl_.plan.device_memory, "SIZE", "a size such as 80GiB",
        "the memory of one device, e.g. 80GiB (default: this machine's RAM shared by its ranks)");
  value(plan, "--nodes", &cl_.plan.nodes, "N", "a count",
        "plan for N machines (with --gpus-per-node; default: the world of parallel.sequence x parallel.data)");
  value(plan, "--gpus-per-node", &cl_.plan.gpus_per_node, "G", "a count", "ranks per machine (with --nodes)");

  CLI::App* ckpt = add_command(&app_, "ckpt", "the checkpoint service and the tools around checkpoints");
  ckpt->require_subcommand(0, 1);
  ckpt->footer("Run `lintrain ckpt COMMAND --help` for the options of one command.");
  CLI::App* serve = add_command(ckpt, "serve", "run the checkpoint service for a checkpoint directory");
  value(serve, "--dir", &cl_.ckpt.dir, "DIR", "a directory", "the checkpoint directory to serve (required)");
  value(serve, "--listen", &cl_.ckpt.listen, "HOST:PORT", "HOST:PORT",
        "the address to listen on (default 127.0.0.1:7070, loopback; port 0 picks a free one)");
  value(serve, "--token-file", &cl_.ckpt.token_file, "FILE", "a file",
        "the file holding the token every client must send (required on a non-loopback address)");
  value(serve, "--stale-after", &cl_.ckpt.stale_after, "SECONDS", "a number of seconds",
        "remove unfinished saves idle for longer than this (default 600)");
  value(serve, "--ready-file", &cl_.ckpt.ready_file, "FILE", "a file",
        "once listening, write the address (with the port bound) to this file");
  CLI::App* ls = add_command(ckpt, "ls", "list checkpoints: step, time, size, layout, complete or not");
  checked(ls->add_option("WHERE", cl_.ckpt.path,
                         "a checkpoint directory, a run folder, one checkpoint folder, or the HOST:PORT of a service"),
          "a directory or HOST:PORT")
      ->type_name("");
  value(ls, "--token-file", &cl_.ckpt.token_file, "FILE", "a file", "the service's token (HOST:PORT only)");
  CLI::App* verify =
      add_command(ckpt, "verify", "check every file and checksum of a checkpoint (or of every one in a directory)");
  checked(verify->add_option("PATH", cl_.ckpt.path, "a checkpoint folder, or a checkpoint directory"),
          "a checkpoint folder or directory")
      ->type_name("");
  CLI::App* exp =
      add_command(ckpt, "export", "write model.safetensors + config.json of a checkpoint (a directory: its newest)");
  checked(exp->add_option("PATH", cl_.ckpt.path, "a checkpoint folder, or a checkpoint directory (its newest)"),
          "a checkpoint folder or directory")
      ->type_name("");
  value(exp, "--out", &cl_.ckpt.out, "DIR", "a directory",
        "where model.safetensors and config.json go (required; outside the checkpoint directory)");

  // `lintrain help` is `lintrain --help`, as it always was.
  add_command(&app_, "help", "")->group("");
}

CLI::App* Parser::add_command(CLI::App* parent, const std::string& name, const std::string& help) {
  CLI::App* cmd = parent->add_subcommand(name, help);
  cmd->allow_extras();
  cmd->footer("");  // not the parent's
  return cmd;
}

CLI::Option* Parser::checked(CLI::Option* opt, const std::string& needs) {
  // The value is the next argument whatever it is, so `--init-from --set ...`
  // would take "--set" for the file: refused, as is an empty value.
  needs_[opt->get_name()] = needs;
  return opt->check(
      [needs](const std::string& v) -> std::string {
        if (v.empty()) return str_cat("needs ", needs, "; got an empty value");
        if (v.rfind("--", 0) == 0) return str_cat("needs ", needs, "; got the option '", v, "'");
        return "";
      },
      "", "not empty or an option");
}

CLI::Option* Parser::value(CLI::App* cmd, const std::string& name, std::string* out, const std::string& type,
                           const std::string& needs, const std::string& help) {
  return checked(cmd->add_option(name, *out, help)->type_name(type), needs);  // twice: CLI11 throws (reworded below)
}

CLI::Option* Parser::values(CLI::App* cmd, const std::string& name, std::vector<std::string>* out,
                            const std::string& type, const std::string& needs, const std::string& help) {
  // One value per occurrence (a run file after --set a=1 is not a second value), all occurrences kept.
  return checked(cmd->add_option(name, *out, help)->type_name(type)->expected(1)->allow_extra_args(false)->take_all(),
                 needs);
}

CLI::Option* Parser::flag(CLI::App* cmd, const std::string& name, bool* out, const std::string& help) {
  return cmd->add_flag(name, *out, help)->multi_option_policy(CLI::MultiOptionPolicy::Throw)->disable_flag_override();
}

void Parser::add_run_file(CLI::App* cmd, bool init_from) {
  checked(cmd->add_option("RUN.yaml", cl_.run.file, "the run file, e.g. examples/tiny.yaml"), "a run file")
      ->type_name("");
  values(cmd, "--set", &cl_.run.overrides, "KEY=VALUE", "KEY=VALUE",
         "override one key of the run file, e.g. --set train.steps=50 (repeatable; applied in order after the file)");
  if (init_from)
    value(cmd, "--init-from", &cl_.run.init_from, "FILE", "a file",
          "start from the weights of a model.safetensors (ours, or any with the same tensor names and shapes)");
  cmd->footer(kSetFooter);
}

// "RUN.yaml [--set KEY=VALUE]... [--init-from FILE]": the options of `cmd`.
std::string Parser::synopsis(const CLI::App& cmd) const {
  std::string out;
  for (const CLI::Option* o : cmd.get_options()) {
    if (o == cmd.get_help_ptr()) continue;
    std::string word = o->get_name();
    if (!o->get_positional()) {
      if (o->get_items_expected_max() != 0) word += " " + o->get_type_name();  // not a flag
      word = "[" + word + "]";
      if (o->get_multi_option_policy() == CLI::MultiOptionPolicy::TakeAll) word += "...";
    }
    out += (out.empty() ? "" : " ") + word;
  }
  return out.empty() ? "no options" : out;
}

// The command (other than `path`) that takes option `name`, "" when none does.
std::string Parser::command_with_option(const CLI::App& cmd, const std::string& name, const std::string& path) const {
  for (const CLI::App* sub : cmd.get_subcommands({})) {
    const std::string sub_path = cmd.get_parent() ? str_cat(cmd.get_name(), " ", sub->get_name()) : sub->get_name();
    if (sub_path != path && sub->get_option_no_throw(name)) return sub_path;
    const std::string deeper = command_with_option(*sub, name, path);
    if (!deeper.empty()) return deeper;
  }
  return "";
}

// Throws for the first argument `cmd` did not take.
void Parser::check_extras(const CLI::App& cmd, const std::string& path) const {
  const std::vector<std::string> extra = cmd.remaining();
  if (extra.empty()) return;
  const std::string& arg = extra[0];
  const std::string who = path.empty() ? "lintrain" : path;
  std::vector<std::string> commands;  // lintrain's or ckpt's (`help` is hidden)
  for (const CLI::App* sub : cmd.get_subcommands({}))
    if (!sub->get_group().empty()) commands.push_back(sub->get_name());
  const std::string takes = commands.empty() ? synopsis(cmd) : "a command: " + quoted_list(commands);
  if (arg.size() > 1 && arg[0] == '-') {
    const std::string name = arg.substr(0, arg.find('='));
    if (!command_with_option(app_, name, path).empty())
      throw UsageError(str_cat(who, " does not take ", name, "; it takes ", takes, see_help(path)));
    throw UsageError(str_cat("unknown option '", arg, "'; ", who, " takes ", takes, see_help(path)));
  }
  if (!commands.empty())
    throw UsageError(str_cat("unknown ", path.empty() ? "" : path + " ", "command '", arg, "'; ", who, " takes ",
                             takes, see_help(path)));
  for (const CLI::Option* o : cmd.get_options())
    if (o->get_positional() && o->count() > 0)
      throw UsageError(str_cat(who, " takes one ", o->get_name(), ", '", o->results().front(),
                               "', but was also given '", arg, "'", see_help(path)));
  throw UsageError(str_cat("unexpected argument '", arg, "'; ", who, " takes ", synopsis(cmd), see_help(path)));
}

// CLI11's message in lintrain's words; CLI11's own when it is not one of these.
std::string Parser::reworded(const CLI::ParseError& e, const CLI::App& cmd, const std::string& path) const {
  const std::string what = e.what();
  const std::string kind = e.get_name();
  const size_t colon = what.find(": ");
  const std::string name = what.substr(0, std::min(colon, what.find(' ')));
  const CLI::Option* opt = cmd.get_option_no_throw(name.rfind("-", 0) == 0 ? name : "--" + name);
  // "--init-from: needs a file; got an empty value" (the checks above).
  if (kind == "ValidationError" && colon != std::string::npos)
    return str_cat(what.substr(0, colon), " ", what.substr(colon + 2), see_help(path));
  if (kind == "ArgumentMismatch" && opt) {
    const std::string opt_name = opt->get_name();
    // "--out: 1 required DIR missing": the last argument.
    if (what.size() > 8 && what.compare(what.size() - 8, 8, " missing") == 0) {
      const auto needs = needs_.find(opt_name);
      return str_cat(opt_name, " needs ", needs == needs_.end() ? opt->get_type_name() : needs->second,
                     "; none was given: write ", opt_name, " ", opt->get_type_name(), see_help(path));
    }
    // "--nproc: At Most 1 required but received 2".
    if (what.find("At Most") != std::string::npos) {
      const std::vector<std::string>& given = opt->results();
      const std::string times = given.size() == 2 ? "twice" : str_cat(given.size(), " times");
      if (opt->get_items_expected_max() == 0)  // a flag
        return str_cat(opt_name, " is given ", times, "; give it once", see_help(path));
      return str_cat(opt_name, " is given ", times, " (", quoted_list(given), "); give it once", see_help(path));
    }
    // "doc was given a disallowed flag override": --doc=1.
    if (what.find("flag override") != std::string::npos)
      return str_cat(opt_name, " is a flag and takes no value; write ", opt_name, " alone", see_help(path));
  }
  return str_cat(what, see_help(path));
}

CommandLine Parser::parse(const std::vector<std::string>& args) {
  std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 takes them last first
  if (!reversed.empty()) reversed.pop_back();                     // the program
  // The command reached so far: the one whose help or options an error names.
  auto command = [this](std::string* path) {
    const CLI::App* cmd = &app_;
    path->clear();
    while (!cmd->get_subcommands().empty()) {
      cmd = cmd->get_subcommands().front();
      *path += (path->empty() ? "" : " ") + cmd->get_name();
    }
    return cmd;
  };
  std::string path;
  try {
    app_.parse(reversed);
  } catch (const CLI::CallForHelp&) {
    cl_.text = app_.help();
    return cl_;
  } catch (const CLI::CallForVersion& e) {
    cl_.text = str_cat(e.what(), "\n");
    return cl_;
  } catch (const CLI::ParseError& e) {
    const CLI::App* cmd = command(&path);
    throw UsageError(reworded(e, *cmd, path));
  }
  const CLI::App* cmd = command(&path);
  for (const CLI::App* a = &app_;; a = a->get_subcommands().front()) {
    check_extras(*a, a == &app_ ? "" : (a->get_parent() == &app_ ? a->get_name() : path));
    if (a == cmd) break;
  }
  if (path.empty() || path == "help") {
    cl_.text = app_.get_formatter()->make_help(&app_, "lintrain", CLI::AppFormatMode::Normal);
    cl_.exit_code = path.empty() ? 2 : 0;
    return cl_;
  }
  if (path == "ckpt") throw UsageError("ckpt needs a command: serve, ls, verify or export" + see_help(path));
  cl_.command = path;
  return cl_;
}

}  // namespace

CommandLine parse_command_line(const std::vector<std::string>& args, const std::string& version_text) {
  return Parser(version_text).parse(args);
}

}  // namespace lintrain
