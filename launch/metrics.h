// What a run reports: one console line per logged step (rank 0), a progress
// bar with ETA when stdout is a terminal, and one JSON object per line in
// <out_dir>/metrics.jsonl for tools (TensorBoard export, plots, tests).
#pragma once

#include <chrono>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace lintrain {

class MetricsLog {
 public:
  // Appends to <out_dir>/metrics.jsonl (truncated when fresh is true).
  MetricsLog(const std::string& out_dir, int total_steps, bool fresh);
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
  void finish();

 private:
  void draw_bar(int step);
  void clear_bar();
  std::FILE* file_ = nullptr;
  int total_;
  bool tty_;
  bool bar_shown_ = false;
  std::chrono::steady_clock::time_point start_;
};

std::string format_duration(double seconds);  // "1h02m", "3m05s", "12s"

}  // namespace lintrain
