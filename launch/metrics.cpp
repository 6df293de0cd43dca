#include "launch/metrics.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "runtime/error.h"
#include "runtime/io/input_file.h"
#include "runtime/io/atomic_file.h"
#include "runtime/io/json.h"

namespace lintrain {

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const long t = static_cast<long>(s + 0.5);
  char buf[32];
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t / 60) % 60);
  else if (t >= 60) std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  else std::snprintf(buf, sizeof buf, "%lds", t);
  return buf;
}

namespace {

// Keeps the complete records of steps <= last_step of a metrics file;
// returns whether they include an evaluation of last_step.
bool truncate_metrics(const std::string& path, int64_t last_step) {
  std::string text, kept;
  bool eval_at_last = false;
  try {
    text = read_input_file(path, "metrics file");
  } catch (const IoError&) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0 && errno == ENOENT) return false;  // nothing written yet
    throw;
  }
  size_t start = 0;
  while (start < text.size()) {
    const size_t end = text.find('\n', start);
    if (end == std::string::npos) break;  // a line the killed run did not finish
    const std::string line = text.substr(start, end - start);
    start = end + 1;
    nlohmann::json record;
    try {
      record = parse_json(line);
    } catch (const Error&) {
      continue;  // not a record of ours: dropped
    }
    const auto step = record.find("step");
    if (step == record.end() || !step->is_number_unsigned()) continue;  // not ours either
    if (step->get<uint64_t>() > static_cast<uint64_t>(last_step)) continue;
    kept += line + "\n";
    const auto kind = record.find("kind");
    if (kind != record.end() && *kind == "eval" && step->get<uint64_t>() == static_cast<uint64_t>(last_step))
      eval_at_last = true;
  }
  write_file_atomic(path, kept);
  return eval_at_last;
}

// A value as metrics.jsonl holds it: a whole number (a count, a byte size,
// "skipped": 1) as an integer, any other finite value as the shortest text
// that reads back as the same double, and NaN or infinity (a diverged loss)
// as null, which is what readers of JSON expect where JSON has no number.
nlohmann::ordered_json metric_value(double v) {
  if (!std::isfinite(v)) return nullptr;
  if (v == std::trunc(v) && std::fabs(v) < 0x1p53) return static_cast<int64_t>(v);
  return v;
}

// The record on one line in the layout Python's json.dumps writes (", " and
// ": " between the parts), which the README shows and tools grep for;
// nlohmann writes each key and value.
std::string record_line(const nlohmann::ordered_json& record) {
  std::string line;
  for (const auto& [key, value] : record.items())
    line += str_cat(line.empty() ? "{" : ", ", nlohmann::json(key).dump(), ": ", value.dump());
  return line + "}\n";
}

}  // namespace

MetricsLog::MetricsLog(const std::string& out_dir, int total_steps, int64_t resumed_step)
    : total_(total_steps),
      first_(resumed_step > 0 ? static_cast<int>(resumed_step) : 0),
      // Under mpirun/srun stdout is a pseudo-terminal even when it goes to a
      // file: no progress bar there.
      tty_(isatty(STDOUT_FILENO) != 0 && !std::getenv("OMPI_COMM_WORLD_SIZE") &&
           !std::getenv("PMIX_RANK") && !std::getenv("SLURM_STEP_ID")),
      start_(std::chrono::steady_clock::now()) {
  path_ = out_dir + "/metrics.jsonl";
  // A FIFO, directory or device in its place is refused by name (opening a
  // FIFO without a reader would otherwise fail with a puzzling ENXIO).
  struct stat pre;
  if (::lstat(path_.c_str(), &pre) == 0 && !S_ISREG(pre.st_mode))
    throw IoError(str_cat("metrics file '", path_, "' is ", non_regular_kind(pre.st_mode),
                          ", not a regular file; remove it or choose another run.out_dir"));
  if (resumed_step >= 0) resumed_eval_done_ = truncate_metrics(path_, resumed_step);
  // O_NONBLOCK: a FIFO put in its place since the check must not hang the run (refused below).
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_APPEND | O_NONBLOCK, 0644);
  if (fd_ < 0)
    throw IoError(str_cat("cannot write metrics file '", path_, "': ", std::strerror(errno), "; check run.out_dir"));
  struct stat st;
  if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd_);
    fd_ = -1;
    throw IoError(str_cat("metrics file '", path_, "' is not a regular file; remove it or choose another run.out_dir"));
  }
  if (resumed_step < 0 && ::ftruncate(fd_, 0) != 0)
    throw IoError(str_cat("cannot truncate metrics file '", path_, "': ", write_error_text(errno)));
  (void)::fcntl(fd_, F_SETFL, O_APPEND);
  good_size_ = resumed_step < 0 ? 0 : static_cast<uint64_t>(st.st_size);
}

MetricsLog::~MetricsLog() {
  if (fd_ >= 0) ::close(fd_);
}

void MetricsLog::write(int step, const std::vector<std::pair<std::string, double>>& values,
                       const std::string& kind) {
  nlohmann::ordered_json record = {{"step", step}};
  if (!kind.empty()) record["kind"] = kind;
  for (const auto& [k, v] : values) record[k] = metric_value(v);
  std::string line = record_line(record);
  if (held_.size() >= kMaxHeld) {  // the oldest held record goes: counted, said at the end
    held_.pop_front();
    ++lost_;
  }
  held_.push_back(std::move(line));
  flush_held();
}

// Writes the held records in order. A record goes to the file whole or not
// at all: after a failed or short write the file is cut back to its last
// complete line, so metrics.jsonl is valid JSONL after any failure. Records
// that could not be written stay held and are tried again with the next one
// (once a step), so a disk that fills and frees again loses nothing.
bool MetricsLog::flush_held() {
  while (!held_.empty()) {
    const std::string& line = held_.front();
    size_t done = 0;
    int err = 0;
    while (done < line.size()) {
      const ssize_t n = ::write(fd_, line.data() + done, line.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        err = n < 0 ? errno : EIO;
        break;
      }
      done += static_cast<size_t>(n);
    }
    if (err != 0) {
      if (done > 0 && ::ftruncate(fd_, static_cast<off_t>(good_size_)) != 0) {
        // Cannot cut the partial line: the next record starts on a new line so
        // that at most this one line is unreadable, and it is counted.
        ++cut_lines_;
      }
      if (!failing_) {
        failing_ = true;
        print_line(str_cat("lintrain: warning: cannot write ", path_, ": ", write_error_text(err),
                           "; training continues and keeps the records in memory (up to ", kMaxHeld,
                           ") until the file can be written again\n"));
      }
      last_error_ = write_error_text(err);
      return false;
    }
    good_size_ += line.size();
    held_.pop_front();
  }
  if (failing_) {
    failing_ = false;
    print_line(str_cat("lintrain: ", path_, " can be written again; the held records are in it", lost_ ? str_cat(" (", lost_, " of the oldest were dropped)") : "", "\n"));
  }
  return true;
}

std::string MetricsLog::loss_report() const {
  if (held_.empty() && lost_ == 0 && cut_lines_ == 0) return "";
  return str_cat(held_.size() + lost_, " metrics records could not be written to ", path_, " (", last_error_,
                 "): the file is valid JSONL but lacks them", cut_lines_ ? str_cat(", and ", cut_lines_, " line(s) are cut") : "",
                 "; free space in run.out_dir");
}

double MetricsLog::eta_seconds(int step, double elapsed) const {
  // The rate of this process's steps: a resumed run started at first_.
  const double done = static_cast<double>(step + 1 - first_) / std::max(1, total_ - first_);
  return elapsed / done - elapsed;
}

void MetricsLog::clear_bar() {
  if (bar_shown_) std::fputs("\r\033[2K", stdout);
  bar_shown_ = false;
}

void MetricsLog::draw_bar(int step) {
  if (!tty_) return;
  const double done = static_cast<double>(step + 1) / total_;
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double eta = eta_seconds(step, elapsed);
  const int width = 30, fill = static_cast<int>(done * width);
  std::string bar(static_cast<size_t>(fill), '#');
  bar.resize(width, '.');
  std::printf("[%s] %d/%d  elapsed %s  eta %s", bar.c_str(), step + 1, total_,
              format_duration(elapsed).c_str(), format_duration(eta).c_str());
  std::fflush(stdout);
  bar_shown_ = true;
}

void MetricsLog::print_step(int step, double loss, double lr, double grad_norm,
                            double tokens_per_s, double gflops, double mfu, double accuracy) {
  clear_bar();
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  std::printf("step %5d/%d | loss %.4f | lr %.3e | grad-norm %.3f | %8.0f tok/s | %6.1f GFLOP/s",
              step + 1, total_, loss, lr, grad_norm, tokens_per_s, gflops);
  if (mfu >= 0) std::printf(" | MFU %.1f%%", 100 * mfu);
  if (accuracy >= 0) std::printf(" | acc %.3f", accuracy);
  std::printf(" | eta %s\n", format_duration(eta_seconds(step, elapsed)).c_str());
  draw_bar(step);
  std::fflush(stdout);
}

void MetricsLog::print_eval(int step, double loss, double accuracy) {
  clear_bar();
  std::printf("eval  %5d/%d | val-loss %.4f", step + 1, total_, loss);
  if (accuracy >= 0) std::printf(" | val-acc %.3f", accuracy);
  std::printf("\n");
  draw_bar(step);
  std::fflush(stdout);
}

void MetricsLog::print_line(const std::string& text) {
  clear_bar();
  std::fputs(text.c_str(), stdout);
  std::fflush(stdout);
}

void MetricsLog::finish() {
  flush_held();
  const std::string lost = loss_report();
  if (!lost.empty()) print_line(str_cat("lintrain: warning: ", lost, "\n"));
  clear_bar();
  std::fflush(stdout);
}

}  // namespace lintrain
