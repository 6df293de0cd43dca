// What a run reports: one console line per logged step (rank 0), a progress
// bar with ETA when stdout is a terminal, and one JSON object per line in
// <out_dir>/metrics.jsonl for tools (TensorBoard export, plots, tests).
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace lintrain {

class MetricsLog {
 public:
  // Writes <out_dir>/metrics.jsonl: a new file when resumed_step < 0; else
  // the existing file continues after its records of steps <= resumed_step
  // (later ones, written by a run that died before its next checkpoint, are
  // dropped, as is a last line cut short), so a resumed run repeats no step.
  MetricsLog(const std::string& out_dir, int total_steps, int64_t resumed_step = -1);
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;

  // One JSON line: {"step": s, k1: v1, ...} (+ "kind" when non-empty).
  void write(int step, const std::vector<std::pair<std::string, double>>& values,
             const std::string& kind = "");
  // Console: the step line, then the progress bar redrawn on a terminal.
  void print_step(int step, double loss, double lr, double grad_norm, double tokens_per_s,
                  double gflops, double accuracy);
  void print_eval(int step, double loss, double accuracy);
  // Any other console line (checkpoints, warnings), clear of the progress bar.
  void print_line(const std::string& text);
  void finish();

 private:
  void draw_bar(int step);
  double eta_seconds(int step, double elapsed) const;
  void clear_bar();
  std::FILE* file_ = nullptr;
  int total_;
  int first_;  // steps already done when this process started
  bool tty_;
  bool bar_shown_ = false;
  std::chrono::steady_clock::time_point start_;
};

std::string format_duration(double seconds);  // "1h02m", "3m05s", "12s"

}  // namespace lintrain
