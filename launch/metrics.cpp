#include "launch/metrics.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "runtime/error.h"
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

// Keeps the complete records of steps <= last_step of a metrics file.
void truncate_metrics(const std::string& path, int64_t last_step) {
  std::FILE* in = std::fopen(path.c_str(), "rb");
  if (!in) return;  // nothing written yet
  std::string text, kept;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, in)) > 0) text.append(buf, n);
  std::fclose(in);
  size_t start = 0;
  while (start < text.size()) {
    const size_t end = text.find('\n', start);
    if (end == std::string::npos) break;  // a line the killed run did not finish
    const std::string line = text.substr(start, end - start);
    start = end + 1;
    try {
      const JsonValue record = parse_json(line);
      const JsonValue* step = record.find("step");
      if (step && step->as_uint64() <= static_cast<uint64_t>(last_step)) kept += line + "\n";
    } catch (const Error&) {
      // Not a record of ours: dropped.
    }
  }
  write_file_atomic(path, kept);
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
  const std::string path = out_dir + "/metrics.jsonl";
  if (resumed_step >= 0) truncate_metrics(path, resumed_step);
  file_ = std::fopen(path.c_str(), resumed_step < 0 ? "w" : "a");
  if (!file_) throw IoError(str_cat("cannot write metrics file '", path, "'; check run.out_dir"));
}

MetricsLog::~MetricsLog() {
  if (file_) std::fclose(file_);
}

void MetricsLog::write(int step, const std::vector<std::pair<std::string, double>>& values,
                       const std::string& kind) {
  std::fprintf(file_, "{\"step\": %d", step);
  if (!kind.empty()) std::fprintf(file_, ", \"kind\": \"%s\"", kind.c_str());
  for (const auto& [k, v] : values) {
    if (std::isfinite(v)) std::fprintf(file_, ", \"%s\": %.9g", k.c_str(), v);
    else std::fprintf(file_, ", \"%s\": null", k.c_str());
  }
  std::fprintf(file_, "}\n");
  std::fflush(file_);
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
                            double tokens_per_s, double gflops, double accuracy) {
  clear_bar();
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  std::printf("step %5d/%d | loss %.4f | lr %.3e | grad-norm %.3f | %8.0f tok/s | %6.1f GFLOP/s",
              step + 1, total_, loss, lr, grad_norm, tokens_per_s, gflops);
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
  clear_bar();
  std::fflush(stdout);
}

}  // namespace lintrain
