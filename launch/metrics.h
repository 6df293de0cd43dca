// What a run reports: one console line per logged step (rank 0), a progress
// bar with ETA when stdout is a terminal, and one JSON object per line in
// <out_dir>/metrics.jsonl for tools (TensorBoard export, plots, tests).
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <deque>
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

  // One JSON line: {"step": s, "kind": kind (when non-empty), k1: v1, ...},
  // with json.dumps' ", " and ": " between the parts; a whole value (a count,
  // "skipped": 1) as an integer, any other as the shortest text that reads
  // back as the same double, NaN or infinity as null.
  // Never throws and never blocks training on a failing disk: a record that
  // cannot be written (disk full, I/O error) is held in memory and tried
  // again with every later write, the file is cut back to its last complete
  // line, and the console says so once per failure and again on recovery.
  void write(int step, const std::vector<std::pair<std::string, double>>& values,
             const std::string& kind = "");
  // Console: the step line, then the progress bar redrawn on a terminal.
  // mfu and accuracy < 0 are left out.
  void print_step(int step, double loss, double lr, double grad_norm, double tokens_per_s,
                  double gflops, double mfu, double accuracy);
  void print_eval(int step, double loss, double accuracy);
  // Any other console line (checkpoints, warnings), clear of the progress bar.
  void print_line(const std::string& text);
  // Writes what is held, then warns when some records never made it.
  void finish();
  // "" when every record is in the file; else how many are missing and why.
  std::string loss_report() const;
  // Whether the records kept from the file resumed include an evaluation of
  // the step resumed from (a run stopped during its final evaluation has none).
  bool resumed_eval_done() const { return resumed_eval_done_; }

 private:
  void draw_bar(int step);
  double eta_seconds(int step, double elapsed) const;
  void clear_bar();
  bool flush_held();
  static constexpr size_t kMaxHeld = 100000;  // about 20 MB of records
  std::string path_;
  int fd_ = -1;
  uint64_t good_size_ = 0;       // bytes of complete records in the file
  std::deque<std::string> held_;  // records not yet written, oldest first
  uint64_t lost_ = 0;            // held records dropped beyond kMaxHeld
  uint64_t cut_lines_ = 0;       // partial lines that could not be cut back
  bool failing_ = false;
  bool resumed_eval_done_ = false;
  std::string last_error_;
  int total_;
  int first_;  // steps already done when this process started
  bool tty_;
  bool bar_shown_ = false;
  std::chrono::steady_clock::time_point start_;
};

std::string format_duration(double seconds);  // "1h02m", "3m05s", "12s"

}  // namespace lintrain
