#include "launch/checkpointing.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <thread>

#include "launch/metrics.h"
#include "launch/stop_signals.h"
#include "parallel/communicator.h"
#include "parallel/process_grid.h"
#include "runtime/checkpoint/service/client.h"
#include "runtime/checkpoint/service/tcp_probe.h"
#include "runtime/error.h"
#include "runtime/process.h"

namespace lintrain {
namespace {

void broadcast_string(Communicator& comm, std::string& s, int root) {
  uint64_t n = s.size();
  comm.broadcast(&n, sizeof n, root);
  s.resize(n);
  if (n > 0) comm.broadcast(s.data(), n, root);
}

std::string megabytes(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MB", bytes / 1e6);
  return buf;
}

std::string millis(double s) {
  char buf[32];
  if (s < 1) std::snprintf(buf, sizeof buf, "%.1f ms", s * 1e3);
  else std::snprintf(buf, sizeof buf, "%.2f s", s);
  return buf;
}

// How long a service that refuses connections (nothing listens on its
// port) is waited for at start: long enough for one that is being
// (re)started, short of checkpoint.timeout_s's minutes.
constexpr double kRefusedGraceS = 10;

// Rank 0, resume: auto: the service's directory, once it answers. Says that
// it waits when the first attempt fails, up to timeout_s; throws Error when
// nothing has listened on its port for kRefusedGraceS, or at the deadline,
// and ConfigError when the service refuses this run.
std::string wait_for_service(const ServiceEndpoint& ep, double timeout_s) {
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(Clock::now() - t0).count(); };
  const std::string fix = "start the service (lintrain ckpt serve --dir DIR --listen " + ep.address +
                          "), fix checkpoint.service, or set resume: none to start fresh (its saves retry until "
                          "the service answers)";
  std::string last;
  double refused_since = -1;  // when connections started being refused
  for (int attempt = 0;; ++attempt) {
    try {
      std::string dir = service_hello(ep, std::min(2.0, std::max(0.1, timeout_s - elapsed())));
      if (attempt > 0) {
        std::fprintf(stderr, "lintrain: checkpoint service %s answers (after %.1f s)\n", ep.address.c_str(), elapsed());
        std::fflush(stderr);
      }
      return dir;
    } catch (const ConfigError&) {
      throw;
    } catch (const Error& e) {
      last = e.what();
    }
    if (attempt == 0) {
      std::fprintf(stderr,
                   "lintrain: waiting for the checkpoint service at %s (up to %.0f s, checkpoint.timeout_s): "
                   "resume: auto needs it to tell whether it holds checkpoints of this run\n",
                   ep.address.c_str(), timeout_s);
      std::fflush(stderr);
    }
    const double now = elapsed();
    if (probe_port(ep.address, 1.0) == PortState::kRefused) {
      if (refused_since < 0) refused_since = now;
      if (now - refused_since >= std::min(kRefusedGraceS, timeout_s))
        throw Error(str_cat("resume: auto: checkpoint service ", ep.address, " is not running: nothing listens "
                            "there (connections refused for ", static_cast<int>(now - refused_since), " s); ", fix));
    } else {
      refused_since = -1;
    }
    if (elapsed() >= timeout_s)
      throw Error(str_cat("resume: auto: checkpoint service ", ep.address, " did not answer within ", timeout_s,
                          " s (checkpoint.timeout_s): ", last, "; cannot tell whether it holds checkpoints of "
                          "this run: ", fix));
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
}

// `latest` must be a regular file (or absent): a directory there makes
// every save's pointer update fail after the checkpoint is published.
void check_latest_pointer(const std::string& dir) {
  const std::string path = dir + "/" + kLatestName;
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0 || S_ISREG(st.st_mode)) return;
  const char* kind = S_ISDIR(st.st_mode) ? "a directory" : S_ISLNK(st.st_mode) ? "a symbolic link" : "not a regular file";
  throw ConfigError(str_cat("checkpoint.dir: '", path, "' is ", kind, ", but it must be the file naming the newest "
                            "checkpoint (lintrain writes it after each save): remove it (rm -r ", path,
                            ") or set another checkpoint.dir"));
}

// resume: none into a directory that holds another run's checkpoints would
// replace some of them, keep others and mix the two histories.
// `dir` is the directory to name in the fix (the service's, as it said).
void refuse_fresh_over(CheckpointSource& source, const std::string& dir) {
  int complete = 0;
  int64_t newest = -1;
  for (const CheckpointInfo& c : source.list())
    if (c.complete) {
      ++complete;
      newest = std::max(newest, c.step);
    }
  if (complete == 0) return;
  throw ConfigError(str_cat("resume: none, but ", source.describe(), " already holds ", complete, " checkpoint",
                            complete == 1 ? "" : "s", " of an earlier run (newest ", source.where(newest),
                            "); starting fresh there would replace and mix them: set another run.out_dir or "
                            "checkpoint.dir (or serve another directory), remove them (rm -r ",
                            dir.empty() ? std::string("DIR") : dir, "), or set resume: auto to continue that run"));
}

}  // namespace

// Rank 0: whether the checkpoint folder `path` lies in the directory the
// service said it serves (on this host: resume: PATH into it).
bool RunCheckpoints::in_service_dir(const std::string& path) const {
  if (service_dir_.empty()) return false;
  std::error_code ec1, ec2;
  const auto folder = std::filesystem::weakly_canonical(std::filesystem::path(path).parent_path(), ec1);
  const auto served = std::filesystem::weakly_canonical(service_dir_, ec2);
  return !ec1 && !ec2 && folder == served;
}

RunCheckpoints::RunCheckpoints(const RunConfig& cfg, const ProcessGrid& grid) : cfg_(cfg), grid_(grid) {
  dir_ = cfg.checkpoint.resolved_dir(cfg.run.out_dir);
  const std::string& service = cfg.checkpoint.service;
  if (service == "local") {
    const char* env = std::getenv(kServiceEnv);
    if (!env || !*env)
      throw ConfigError(str_cat("checkpoint.service: local means the checkpoint service that `lintrain launch` "
                                "starts for the run, but this process was not started by it (", kServiceEnv,
                                " is unset); run it with lintrain launch, or start `lintrain ckpt serve --dir DIR` "
                                "yourself and set checkpoint.service: HOST:PORT"));
    check_service_address(env, str_cat(kServiceEnv, " (set by lintrain launch for checkpoint.service: local)"));
    endpoint_ = service_endpoint(env, cfg.checkpoint.token_file);
  } else if (service != "none") {
    check_service_address(service, "checkpoint.service");
    endpoint_ = service_endpoint(service, cfg.checkpoint.token_file);
  }
  Communicator& world = grid.world();
  if (world.rank() == 0) job_ = new_job_id();
  broadcast_string(world, job_, 0);
  if (world.rank() == 0) {
    if (uses_service()) {
      // A wrong token or protocol is a setting to fix now, not after the
      // first save; a service that is not up yet is only reported.
      // resume: auto cannot go on without the service's answer; a fresh run
      // trains on and its saves retry.
      if (cfg.resume == "auto") {
        service_dir_ = wait_for_service(endpoint_, cfg.checkpoint.timeout_s);
      } else {
        try {
          service_dir_ = service_hello(endpoint_, std::min(5.0, cfg.checkpoint.timeout_s));
          if (cfg.resume == "none") refuse_fresh_over(*service_source(endpoint_, cfg.checkpoint.timeout_s),
                                                      service_dir_);
        } catch (const ConfigError&) {
          throw;
        } catch (const Error& e) {
          startup_warning_ = str_cat(e.what(), "; saves will retry until it answers");
        }
      }
    } else {
      lock_ = std::make_unique<CheckpointStore>(dir_, /*create=*/true);
      lock_->lock_for_writing(str_cat("job ", job_, " (pid ", ::getpid(), " on ", host_name(), ")"));
      lock_->remove_stale(0);
      check_latest_pointer(dir_);
      if (cfg.resume == "none") refuse_fresh_over(*directory_source(dir_), dir_);
    }
  }
  // No rank writes into the directory before rank 0 has cleared it.
  world.barrier();
  SaverOptions o;
  o.job = job_;
  o.rank = world.rank();
  o.world_size = world.size();
  o.data = grid.dp_size();
  o.sequence = grid.sp_size();
  o.async = cfg.checkpoint.async;
  o.timeout_s = cfg.checkpoint.timeout_s;
  o.keep = cfg.checkpoint.keep;
  std::unique_ptr<CheckpointTarget> target;
  if (uses_service()) {
    auto notice = [lead = world.rank() == 0](const std::string& text) {
      if (!lead) return;
      std::fprintf(stderr, "lintrain: %s\n", text.c_str());
      std::fflush(stderr);
    };
    target = service_target(endpoint_, world.rank(), world.size(), notice);
  } else {
    target = directory_target(dir_, world.rank());
  }
  saver_ = std::make_unique<CheckpointSaver>(o, std::move(target));
}

RunCheckpoints::~RunCheckpoints() = default;

std::string RunCheckpoints::describe() const {
  if (!uses_service()) return dir_;
  return str_cat("checkpoint service ", endpoint_.address, service_dir_.empty() ? "" : " (" + service_dir_ + ")");
}

std::unique_ptr<CheckpointSource> RunCheckpoints::source() const {
  if (uses_service()) return service_source(endpoint_, cfg_.checkpoint.timeout_s);
  std::error_code ec;
  if (!std::filesystem::is_directory(dir_, ec)) return nullptr;
  return directory_source(dir_);
}

int64_t RunCheckpoints::resume(TrainState& state, std::vector<std::string>& notes) {
  if (!startup_warning_.empty()) notes.push_back("warning: " + startup_warning_);
  if (cfg_.resume == "none") return -1;
  const auto t0 = std::chrono::steady_clock::now();
  Communicator& world = grid_.world();
  auto warn = [&](const std::string& w) { notes.push_back("warning: " + w); };
  const bool by_path = cfg_.resume != "auto";
  std::optional<OpenedCheckpoint> opened;
  std::unique_ptr<CheckpointSource> src = by_path ? nullptr : source();
  // Rank 0 chooses; every rank then opens (and verifies) that checkpoint.
  int64_t step = -1;
  std::string path;
  if (world.rank() == 0) {
    if (by_path) {
      opened = open_checkpoint_path(cfg_.resume, warn);
    } else if (src) {
      try {
        opened = open_newest(*src, warn);
      } catch (const NoUsableCheckpointError& e) {
        // Starting fresh would train from step 0 over a run that may only
        // need one file restored, and its saves would replace these.
        throw IoError(str_cat("resume: auto: ", e.what(), ". Refusing to start over them: check them with `lintrain "
                              "ckpt verify ", !uses_service() ? dir_ : service_dir_.empty() ? std::string("DIR") : service_dir_,
                              "`, then restore the damaged files or remove those checkpoints, or set resume: none "
                              "(--set resume=none) to start this run from step 0"));
      } catch (const IoError&) {
        throw;
      } catch (const Error& e) {
        // Starting fresh could overwrite a run the service holds.
        throw Error(str_cat("resume: auto: ", e.what(), "; cannot tell whether it holds checkpoints of this run: "
                            "start the service (or fix checkpoint.service), or set resume: none to start fresh"));
      }
    }
    if (opened) {
      step = opened->manifest.step;
      path = opened->where;
    }
  }
  world.broadcast(&step, sizeof step, 0);
  broadcast_string(world, path, 0);
  if (step < 0) return -1;
  // The service lets this job's saves replace another job's later
  // checkpoints only when it went back within the service's own history.
  int64_t here = by_path && !(uses_service() && in_service_dir(path)) ? -1 : step;
  world.broadcast(&here, sizeof here, 0);
  saver_->set_resumed_from(here);
  if (world.rank() != 0) opened = by_path || !uses_service() ? open_checkpoint_path(path, nullptr)
                                                             : open_checkpoint(*src, step);
  for (std::string& n : state.restore(*opened)) notes.push_back(std::move(n));
  char took[64];
  std::snprintf(took, sizeof took, "%.1f MB read, verified and restored in %.2f s", opened->manifest.bytes() / 1e6,
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  notes.push_back(str_cat("resumed from ", path, " at step ", state.counters.step, " (written by DP ",
                          opened->manifest.data, " x SP ", opened->manifest.sequence, "; ", took, ")"));
  return state.counters.step;
}

bool RunCheckpoints::due(int64_t step, int64_t total) const {
  const int every = cfg_.checkpoint.every;
  return every > 0 && (step % every == 0 || step == total);
}

void RunCheckpoints::save(int64_t step, const RunState& state, bool wait, bool stop_cuts_wait) {
  if (!stop_cuts_wait) return saver_->save(step, state, wait);
  const int signals = stop_signal_count();
  saver_->save(step, state, wait, [&] {
    cut_by_signal_ = stop_signal_count() != signals;
    return cut_by_signal_;
  });
}

void RunCheckpoints::fence() { saver_->fence(); }

void RunCheckpoints::reserve(const RunState& state) {
  if (cfg_.checkpoint.every > 0) saver_->reserve(state);
}

void RunCheckpoints::finish() { saver_->finish(); }

bool RunCheckpoints::report(MetricsLog* log, bool print) {
  bool all_ok = true;
  for (const SaveReport& r : saver_->take_reports()) {
    last_ok_ = r.ok;
    last_where_ = r.where;
    last_error_ = r.error;
    if (r.fatal) throw Error(r.error);
    if (r.ok) {
      if (grid_.rank() != 0) continue;
      if (log)
        log->write(static_cast<int>(r.step),
                   {{"bytes", static_cast<double>(r.bytes)}, {"stall_s", r.stall_s}, {"waited_s", r.waited_s},
                    {"write_s", r.write_s}},
                   "checkpoint");
      if (print) {
        std::string line = str_cat("checkpoint step ", r.step, ": ", r.where, " (", megabytes(r.bytes),
                                   ", training paused ", millis(r.stall_s));
        if (r.waited_s > 0.001) line += str_cat(", of which ", millis(r.waited_s), " waiting for the previous save");
        line += str_cat(", written in ", millis(r.write_s), ")\n");
        if (log) log->print_line(line);
      }
      continue;
    }
    all_ok = false;
    const std::string on_rank = grid_.world_size() > 1 ? str_cat(" on rank ", grid_.rank()) : "";
    std::fprintf(stderr, "lintrain: warning: the checkpoint of step %lld %s%s: %s; earlier checkpoints are intact\n",
                 static_cast<long long>(r.step), r.abandoned ? "was abandoned" : "failed", on_rank.c_str(),
                 r.error.c_str());
    std::fflush(stderr);
  }
  return all_ok;
}

}  // namespace lintrain
