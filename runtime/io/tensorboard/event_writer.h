// TensorBoard event files: the scalars a run logs (loss, lr, grad norm,
// throughput, eval loss and accuracy), readable by TensorBoard's own reader.
//
// An event file is a sequence of TFRecords, each
//   uint64 length (little-endian) | uint32 masked crc32c(length bytes)
//   | data[length] | uint32 masked crc32c(data)
// whose data is one serialized Event (runtime/io/tensorboard/event.proto);
// the first holds file_version "brain.Event:2".
//
// The training thread only queues: add_*() takes a mutex held for a push,
// never for I/O, and drops (and counts) an event when the queue is full
// instead of waiting. A background thread serializes and writes the queue
// every flush_every_s seconds and at finish(). A write that fails (disk
// full) never reaches the caller: the file is cut back to its last complete
// record, the records are held and tried again at the next flush (up to the
// queue's capacity, the oldest beyond it dropped and counted), and stderr
// says so once per failure and again on recovery.
//
// Resuming: TensorBoard's reader drops, when it meets a SessionLog START at
// step s, every event it has read before with step >= s (its "purge
// orphaned data"). A run that starts at step s0 writes START at s0 + 1, its
// first step, so what a killed run logged after the checkpoint it resumes
// from disappears from the view and no step shows twice.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace lintrain {

// One TFRecord holding `data` (the framing above).
std::string tfrecord_frame(const std::string& data);

// The path of a new event file in `dir`:
// events.out.tfevents.<unix time>.<hostname>.<pid>.0. Readers take a
// folder's event files in name order, so the time is made later than that of
// any event file already there (a resumed run's file is read after the
// killed run's, whose events its START must purge).
std::string new_event_file_path(const std::string& dir);

struct EventWriterOptions {
  size_t queue_capacity = 4096;  // events (and held records) between two flushes
  double flush_every_s = 5.0;    // how often the background thread writes
  // Where warnings go (from either thread); default: stderr.
  std::function<void(const std::string&)> warn;
};

class EventFileWriter {
 public:
  // Creates `path`, writes its file_version record and starts the
  // background thread. Never throws for I/O: a file that cannot be created
  // is warned about, and every event is then dropped and counted.
  explicit EventFileWriter(std::string path, EventWriterOptions options = {});
  // finish(); never throws.
  ~EventFileWriter();
  EventFileWriter(const EventFileWriter&) = delete;
  EventFileWriter& operator=(const EventFileWriter&) = delete;

  // One event at `step` whose summary holds a simple_value for each pair,
  // tagged prefix + name ("train/" + "loss"); values are stored as float.
  void add_scalars(int64_t step, const std::string& prefix,
                   const std::vector<std::pair<std::string, double>>& values);
  // A SessionLog START at `step` (see "Resuming" above).
  void add_session_start(int64_t step);
  // Writes everything queued, stops the thread and closes the file;
  // later calls (and later add_*()) do nothing.
  void finish();

  const std::string& path() const { return path_; }
  uint64_t dropped() const { return dropped_.load(); }  // events that never reached the file
  uint64_t written() const { return written_.load(); }  // records in the file, file_version included
  // "" when every event is in the file; else how many are missing and why.
  std::string loss_report() const;

 private:
  struct Pending {
    double wall_time;
    int64_t step;
    bool session_start;
    std::vector<std::pair<std::string, float>> values;
  };
  void run();
  void write_held();
  void warn(const std::string& text) const;

  std::string path_;
  EventWriterOptions options_;
  int fd_ = -1;
  uint64_t good_size_ = 0;        // bytes of complete records in the file
  std::deque<std::string> held_;  // framed records not yet written (background thread only)
  bool failing_ = false;
  std::string last_error_;

  std::mutex mu_;  // guards queue_, stopping_, finished_, queue_full_warned_
  std::condition_variable wake_;
  std::vector<Pending> queue_;
  bool stopping_ = false;
  bool finished_ = false;
  bool queue_full_warned_ = false;
  std::atomic<uint64_t> dropped_{0};
  std::atomic<uint64_t> written_{0};
  std::thread thread_;
};

}  // namespace lintrain
