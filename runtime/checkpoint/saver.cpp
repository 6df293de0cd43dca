#include "runtime/checkpoint/saver.h"

#include <algorithm>
#include <chrono>
#include <set>
#include <thread>
#include <utility>

#include "runtime/checkpoint/store.h"
#include "runtime/error.h"
#include "runtime/failpoint.h"

namespace lintrain {
namespace {

using Clock = std::chrono::steady_clock;
constexpr double kPassiveGrace_s = 1.0;  // how long a due save lets the last one finish waiting on others

double now_s() { return std::chrono::duration<double>(Clock::now().time_since_epoch()).count(); }

class DirectoryTarget : public CheckpointTarget {
 public:
  DirectoryTarget(const std::string& dir, int rank) : store_(dir, /*create=*/true), rank_(rank) {}
  std::string describe() const override { return store_.dir(); }

  FileRecord put_file(const SaveId& id, const StagedFile& file, SaveControl& ctl) override {
    store_.begin_save(id.job, id.step);
    auto part = store_.open_part(id.job, id.step, file.name, file.size, /*direct_io=*/true);
    constexpr size_t kPiece = size_t{64} << 20;  // a multiple of 4096: each piece goes out as it is
    for (size_t at = 0; at < file.size; at += kPiece) {
      ctl.check("writing " + file.name);
      part->write(file.data + at, std::min(kPiece, file.size - at));
    }
    failpoint_kill("ckpt.before-part-commit", id.step);
    const FileRecord rec = part->finish();
    trusted_.insert(file.name);
    return rec;
  }

  void arrive(const Arrival& a, SaveControl&) override {
    store_.begin_save(a.job, a.step);
    store_.record_arrival(a);
  }

  std::string wait_published(const SaveId& id, SaveControl& ctl) override {
    double pause = 0.002;
    while (!store_.try_publish(id.job, id.step, trusted_)) {
      if (!ctl.wait(pause)) {
        const auto arrived = store_.arrivals(id.job, id.step);
        ctl.check(str_cat("waiting for the other ranks' shares (", arrived.size(),
                          " arrived; with checkpoint.service: none every rank must reach ", store_.dir(),
                          " on a shared file system, else use a checkpoint service)"));
      }
      pause = std::min(pause * 2, 0.05);  // arrival records are small files: polling is cheap
    }
    trusted_.clear();
    return store_.path_of(id.step);
  }

  void abandon(const SaveId& id) noexcept override {
    trusted_.clear();
    if (rank_ == 0) store_.abandon(id.job, id.step);
  }

 private:
  CheckpointStore store_;
  int rank_;
  std::set<std::string> trusted_;  // files this process wrote and hashed
};

}  // namespace

// ---- SaveControl ----------------------------------------------------------------

SaveControl::SaveControl(double timeout_s) : timeout_s_(timeout_s), deadline_(now_s() + timeout_s) {}

bool SaveControl::wait(double seconds) {
  std::unique_lock<std::mutex> lock(mu_);
  passive_ = true;
  const double left = std::min(seconds, deadline_ - now_s());
  if (left > 0 && !cancelled_)
    cv_.wait_for(lock, std::chrono::duration<double>(left), [&] { return cancelled_.load(); });
  passive_ = false;
  return !stopped();
}

void SaveControl::cancel(const std::string& why) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!cancelled_) why_ = why;
    cancelled_ = true;
    if (interrupt_) interrupt_();
  }
  cv_.notify_all();
}

SaveControl::Waiting::Waiting(SaveControl& ctl, std::function<void()> interrupt, bool passive) : ctl_(ctl) {
  std::lock_guard<std::mutex> lock(ctl_.mu_);
  ctl_.interrupt_ = std::move(interrupt);
  ctl_.passive_ = passive;
  if (ctl_.cancelled_ && ctl_.interrupt_) ctl_.interrupt_();
}

SaveControl::Waiting::~Waiting() {
  std::lock_guard<std::mutex> lock(ctl_.mu_);
  ctl_.interrupt_ = nullptr;
  ctl_.passive_ = false;
}

bool SaveControl::stopped() const { return cancelled_ || now_s() >= deadline_; }

double SaveControl::remaining_s() const { return std::max(0.0, deadline_ - now_s()); }

void SaveControl::check(const std::string& doing) const {
  if (cancelled_) {
    std::lock_guard<std::mutex> lock(mu_);
    throw Error(str_cat("abandoned while ", doing, ": ", why_));
  }
  if (now_s() >= deadline_)
    throw Error(str_cat("timed out after ", timeout_s_, " s (checkpoint.timeout_s) while ", doing));
}

// ---- CheckpointSaver --------------------------------------------------------------

std::unique_ptr<CheckpointTarget> directory_target(const std::string& dir, int rank) {
  return std::make_unique<DirectoryTarget>(dir, rank);
}

CheckpointSaver::CheckpointSaver(SaverOptions opts, std::unique_ptr<CheckpointTarget> target)
    : opts_(std::move(opts)), target_(std::move(target)) {}

CheckpointSaver::~CheckpointSaver() { finish(); }

bool CheckpointSaver::busy() const {
  std::lock_guard<std::mutex> lock(mu_);
  return busy_;
}

void CheckpointSaver::finish(const std::function<bool()>& give_up) {
  if (give_up && ctl_)
    while (busy()) {
      if (give_up()) {
        ctl_->cancel(kGiveUpWhy);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  if (worker_.joinable()) worker_.join();
}

std::vector<SaveReport> CheckpointSaver::take_reports() {
  std::lock_guard<std::mutex> lock(mu_);
  return std::exchange(reports_, {});
}

void CheckpointSaver::save(int64_t step, const RunState& state, bool wait, const std::function<bool()>& give_up) {
  const double t0 = now_s();
  // At most one save in flight: cancel the last one if it only waits on
  // others, else wait for it to finish writing. A live service answers in
  // milliseconds, so the last save first gets kPassiveGrace_s to end: only a
  // service (or rank) that does not answer costs a save, not a due one that
  // came a moment early.
  if (busy() && ctl_ && ctl_->passive()) {
    const double until = now_s() + kPassiveGrace_s;
    while (busy() && now_s() < until) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (busy() && ctl_->passive()) ctl_->cancel();
  }
  finish();
  SaveReport report;
  report.step = step;
  report.waited_s = now_s() - t0;
  state_ = state;
  if (opts_.rank == 0) {
    try {
      staged_.prepare(state_);
    } catch (const std::exception& e) {  // no memory for the staging buffer: this save fails, training goes on
      report.error = e.what();
      report.stall_s = now_s() - t0;
      std::lock_guard<std::mutex> lock(mu_);
      reports_.push_back(std::move(report));
      return;
    }
    report.bytes = staged_.nbytes();
  }
  report.stall_s = now_s() - t0;
  ctl_ = std::make_unique<SaveControl>(opts_.timeout_s);
  {
    std::lock_guard<std::mutex> lock(mu_);
    busy_ = true;
    copying_ = true;
    fence_s_ = 0;
  }
  worker_ = std::thread([this, id = SaveId{opts_.job, step, opts_.resumed_from}, report] { run(id, report); });
  if (wait || !opts_.async) {
    finish(wait ? give_up : std::function<bool()>());
    // A synchronous save stalls training for all of it.
    std::lock_guard<std::mutex> lock(mu_);
    if (!reports_.empty() && reports_.back().step == step) reports_.back().stall_s = now_s() - t0;
  }
}

void CheckpointSaver::reserve(const RunState& state) {
  finish();
  if (opts_.rank != 0) return;
  // On the saver's thread: populating a state-sized buffer takes seconds on
  // some VMs, which a resumed run should not wait for before its first step.
  state_ = state;
  worker_ = std::thread([this] {
    try {
      staged_.prepare(state_);
    } catch (const std::exception&) {
      // Out of memory now: the first save prepares again and reports it.
    }
  });
}

// Read by save() on the caller's thread only: no lock.
void CheckpointSaver::set_resumed_from(int64_t step) { opts_.resumed_from = step; }

void CheckpointSaver::fence() {
  const double t0 = now_s();
  std::unique_lock<std::mutex> lock(mu_);
  if (!copying_) return;
  done_cv_.wait(lock, [&] { return !copying_; });
  // Into the save's report: still to come, or already filed.
  if (busy_) fence_s_ += now_s() - t0;
  else if (!reports_.empty()) reports_.back().stall_s += now_s() - t0;
}

void CheckpointSaver::run(SaveId id, SaveReport report) {
  const double t0 = now_s();
  // The first half: snapshot the live state, then let training change it.
  auto release = [&] {
    {
      std::lock_guard<std::mutex> lock(mu_);
      copying_ = false;
    }
    done_cv_.notify_all();
  };
  try {
    Arrival a;
    a.job = id.job;
    a.step = id.step;
    a.world_size = opts_.world_size;
    a.rank = opts_.rank;
    a.data = opts_.data;
    a.sequence = opts_.sequence;
    a.resumed_from = id.resumed_from;
    try {
      if (opts_.rank == 0) staged_.copy(state_);
      else a.replica_xxh3 = state_.digest();
    } catch (...) {
      release();
      throw;
    }
    release();
    if (opts_.rank == 0) a.replica_xxh3 = staged_.digest();  // of the copy: training may go on
    if (opts_.rank == 0) {
      a.keep = opts_.keep;
      for (const StagedFile& f : staged_.files()) {
        a.files.push_back(target_->put_file(id, f, *ctl_));
        failpoint_kill("ckpt.after-part", id.step);
      }
    }
    failpoint_kill("ckpt.before-arrival", id.step);
    target_->arrive(a, *ctl_);
    if (opts_.rank == 0) report.where = target_->wait_published(id, *ctl_);
    report.ok = true;
  } catch (const std::exception& e) {
    report.error = e.what();
    report.fatal = dynamic_cast<const ReplicaMismatchError*>(&e) != nullptr;
    report.abandoned = ctl_->cancelled();
    target_->abandon(id);
  }
  report.write_s = now_s() - t0;
  std::lock_guard<std::mutex> lock(mu_);
  report.stall_s += fence_s_;
  reports_.push_back(std::move(report));
  busy_ = false;
}

}  // namespace lintrain
