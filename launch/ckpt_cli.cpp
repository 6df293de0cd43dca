#include "launch/ckpt_cli.h"

#include <pthread.h>
#include <signal.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <string>
#include <vector>

#include "launch/weights.h"
#include "runtime/data/megatron_loader.h"
#include "layers/model.h"
#include "runtime/checkpoint/reader.h"
#include "runtime/checkpoint/service/client.h"
#include "runtime/checkpoint/service/server.h"
#include "runtime/checkpoint/store.h"
#include "runtime/config/config.h"
#include "runtime/checkpoint/service/tcp_probe.h"
#include "runtime/error.h"
#include "runtime/io/atomic_file.h"
#include "runtime/io/input_file.h"

namespace lintrain {
namespace {

// The one argument of ls, verify and export.
const std::string& need_path(const CkptArgs& a, const char* what) {
  if (a.path.empty()) throw UsageError(str_cat("ckpt needs ", what));
  return a.path;
}

double parse_seconds(const std::string& flag, const std::string& text) {
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || errno != 0 || !(v >= 0))
    throw UsageError(str_cat(flag, " needs a number of seconds >= 0, got '", text, "'"));
  return v;
}

std::string size_text(uint64_t bytes) {
  char buf[32];
  if (bytes >= 1000000000ull) std::snprintf(buf, sizeof buf, "%.2f GB", bytes / 1e9);
  else std::snprintf(buf, sizeof buf, "%.1f MB", bytes / 1e6);
  return buf;
}

std::string time_text(double unix_s) {
  if (unix_s <= 0) return "-";
  const time_t t = static_cast<time_t>(unix_s);
  struct tm tm;
  localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

// Whether `path` is `dir` or lies inside it (symbolic links resolved where
// the paths exist).
bool lies_within(const std::string& path, const std::string& dir) {
  auto full = [](const std::string& p) {
    std::error_code ec;
    std::filesystem::path abs = std::filesystem::absolute(p, ec);
    std::filesystem::path c = std::filesystem::weakly_canonical(abs, ec);
    return (ec ? abs : c).lexically_normal();
  };
  const std::filesystem::path p = full(path), d = full(dir);
  auto pi = p.begin();
  for (auto di = d.begin(); di != d.end(); ++di) {
    if (di->empty()) continue;  // a trailing slash
    if (pi == p.end() || *pi != *di) return false;
    ++pi;
  }
  return true;
}

int serve(const CkptArgs& a) {
  ServiceOptions o;
  o.dir = a.dir;
  if (o.dir.empty()) throw UsageError("ckpt serve needs --dir DIR, the checkpoint directory to serve");
  if (!a.listen.empty()) o.listen = a.listen;
  o.token_file = a.token_file;
  if (!a.stale_after.empty()) o.stale_after_s = parse_seconds("--stale-after", a.stale_after);
  const std::string& ready_file = a.ready_file;

  // The signals that stop the service are taken by this thread alone
  // (sigwait below); gRPC's threads, started next, inherit the mask.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  CheckpointService service(o);
  std::printf("lintrain ckpt serve: listening on %s, checkpoints in %s%s\n", service.address().c_str(),
              service.dir().c_str(), o.token_file.empty() ? " (loopback, no token)" : " (token required)");
  std::fflush(stdout);
  if (!ready_file.empty()) write_file_atomic(ready_file, service.address() + "\n");
  int sig = 0;
  sigwait(&stop, &sig);
  std::printf("lintrain ckpt serve: %s received; finishing the calls in flight\n", strsignal(sig));
  std::fflush(stdout);
  service.shutdown(10);
  return 0;
}

int list(const CkptArgs& a) {
  const std::string where = need_path(a, "a checkpoint directory or HOST:PORT, e.g. lintrain ckpt ls runs/tiny/checkpoints");
  std::error_code ec;
  std::vector<CheckpointInfo> all;
  std::string latest;
  namespace fs = std::filesystem;
  const fs::path norm = fs::path(where).lexically_normal();
  const fs::path folder = norm.filename().empty() ? norm.parent_path() : norm;  // "a/b/" -> "a/b"
  int64_t step = -1;
  if (fs::is_directory(where, ec) && parse_step_dir_name(folder.filename().string(), &step)) {
    // One checkpoint folder: that one, and where its directory is.
    const std::string dir = folder.has_parent_path() ? folder.parent_path().string() : ".";
    std::printf("%s is one checkpoint; its directory is %s (lintrain ckpt ls %s lists them all)\n", where.c_str(),
                dir.c_str(), dir.c_str());
    all.push_back(inspect_checkpoint(folder.string()));
    latest = CheckpointStore(dir).latest();
  } else if (fs::is_directory(where, ec)) {
    // A run folder: its checkpoints are in checkpoints/ (checkpoint.dir's default).
    std::string dir = where;
    const std::string nested = (folder / "checkpoints").string();
    if (CheckpointStore(dir).list().empty() && fs::is_directory(nested, ec) &&
        !CheckpointStore(nested).list().empty()) {
      std::printf("%s holds no checkpoint itself; listing %s, its checkpoint directory\n", where.c_str(),
                  nested.c_str());
      dir = nested;
    }
    const CheckpointStore store(dir);
    all = store.list();
    latest = store.latest();
  } else if (where.find(':') != std::string::npos) {
    check_service_address(where, "ckpt ls");
    if (probe_port(where, 2.0) == PortState::kRefused)
      throw Error(str_cat("ckpt ls: nothing listens on ", where, " (connection refused); start `lintrain ckpt serve "
                          "--dir DIR --listen ", where, "` or give the address it listens on"));
    ServiceEndpoint ep = service_endpoint(where, a.token_file);
    ep.token_setting = "--token-file FILE";
    all = service_source(ep, 10)->list();
  } else {
    throw IoError(str_cat("'", where, "' is neither a directory nor a service address HOST:PORT"));
  }
  std::printf("%-14s %-19s %10s  %-12s %s\n", "checkpoint", "created", "size", "layout", "status");
  for (const CheckpointInfo& c : all) {
    const std::string name = step_dir_name(c.step);
    const std::string layout = c.world_size > 0 ? str_cat("DP ", c.data, " x SP ", c.sequence) : "-";
    std::printf("%-14s %-19s %10s  %-12s %s%s\n", name.c_str(), time_text(c.created_unix).c_str(),
                size_text(c.bytes).c_str(), layout.c_str(), c.complete ? "complete" : ("INCOMPLETE: " + c.problem).c_str(),
                name == latest ? "  <- latest" : "");
  }
  if (all.empty()) std::printf("(no checkpoints)\n");
  return 0;
}

int verify(const CkptArgs& a) {
  const std::string path = need_path(a, "a checkpoint folder or directory, e.g. lintrain ckpt verify runs/tiny/checkpoints");
  std::error_code ec;
  if (!std::filesystem::is_directory(path, ec)) throw IoError(str_cat("'", path, "' is not a directory"));
  std::vector<std::string> folders;
  int64_t step;
  const std::filesystem::path p = std::filesystem::path(path).lexically_normal();
  const std::string leaf = (p.filename().empty() ? p.parent_path() : p).filename().string();
  if (parse_step_dir_name(leaf, &step)) {
    folders.push_back(path);
  } else {
    for (const CheckpointInfo& c : CheckpointStore(path).list()) folders.push_back(c.path);
    if (folders.empty()) throw IoError(str_cat("'", path, "' holds no checkpoint (no step-<N> folder)"));
  }
  int bad = 0;
  for (const std::string& folder : folders) {
    try {
      const OpenedCheckpoint c = open_checkpoint_path(folder, nullptr);
      std::printf("%s: ok (%zu files, %s, every checksum matches)\n", folder.c_str(), c.manifest.files.size(),
                  size_text(c.manifest.bytes()).c_str());
    } catch (const Error& e) {
      ++bad;
      std::printf("%s: BAD: %s\n", folder.c_str(), e.what());
    }
  }
  std::fflush(stdout);
  return bad == 0 ? 0 : 1;
}

int export_checkpoint(const CkptArgs& a) {
  const std::string path = need_path(a, "a checkpoint, e.g. lintrain ckpt export runs/tiny/checkpoints --out exported");
  const std::string& out = a.out;
  if (out.empty()) throw UsageError("ckpt export needs --out DIR, where model.safetensors and config.json go");
  auto warn = [](const std::string& w) { std::fprintf(stderr, "lintrain: warning: %s\n", w.c_str()); };
  const OpenedCheckpoint c = open_checkpoint_path(path, warn);
  // Its model.safetensors would replace a checkpoint's, which then no longer
  // verifies, or sit among the files that retention and resume manage.
  std::string area = checkpoint_area_of(out);
  const std::string source_dir = std::filesystem::path(c.where).parent_path().string();
  if (area.empty() && lies_within(out, source_dir)) area = source_dir;
  if (!area.empty())
    throw Error(str_cat("ckpt export --out ", out, " is inside the checkpoint ",
                             lies_within(area, c.where) ? "folder " : "directory ", area,
                             ": the exported files would replace or sit among the checkpoint's own; give --out a "
                             "directory outside the checkpoint directory (e.g. --out exported)"));
  const auto& meta = c.part("trainer").metadata();
  const auto yaml = meta.find("config");
  if (yaml == meta.end()) throw IoError(str_cat(c.where, ": trainer.safetensors holds no run file (metadata 'config')"));
  const RunConfig cfg = parse_recorded_run_config(yaml->second, c.where + " (its run file)");
  const ParamTable table = make_param_table(cfg.model);
  FlatBuffer params(table);
  RunState state;
  for (const TensorView& v : table.views()) state.add("model", v.name, DType::F32, v.shape, params.at(v));
  restore_run_state(c, state);  // the model part alone: the state has no other
  create_output_dir(out, "ckpt export --out");  // says "permission denied", "a dangling link", ...
  // The run's tokenizer, where its run file says; relative paths were the
  // training's working directory, so a folder moved since leaves it behind.
  ExportInfo info = export_info(cfg);
  std::error_code ec;
  const std::string first_data = cfg.data.kind == "megatron" ? megatron_blend(cfg.data)[0].prefix + ".idx" : "";
  if (!cfg.data.tokenizer.empty() && !std::filesystem::is_regular_file(cfg.data.tokenizer, ec)) {
    warn(str_cat("the run's tokenizer ", cfg.data.tokenizer, " (data.tokenizer) is not there from here; exporting "
                 "without it (copy it to ", out, "/tokenizer.json, or run ckpt export from the training's folder)"));
    info.tokenizer.clear();
  } else if (info.tokenizer.empty() && !first_data.empty() && !std::filesystem::exists(first_data, ec)) {
    warn(str_cat("the run's data ", first_data, " is not there from here, so neither is a tokenizer.json beside "
                 "it; exporting without one (run ckpt export from the training's folder to include it)"));
  }
  export_weights(cfg.model, info, table, params, out);
  std::printf("lintrain ckpt export: %s (step %lld) -> %s/model.safetensors, %s/config.json%s\n", c.where.c_str(),
              static_cast<long long>(c.manifest.step), out.c_str(), out.c_str(),
              info.tokenizer.empty() ? "" : str_cat(", ", out, "/tokenizer.json").c_str());
  return 0;
}

}  // namespace

int run_ckpt(const std::string& command, const CkptArgs& args) {
  if (command == "serve") return serve(args);
  if (command == "ls") return list(args);
  if (command == "verify") return verify(args);
  return export_checkpoint(args);
}

}  // namespace lintrain
