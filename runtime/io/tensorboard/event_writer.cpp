#include "runtime/io/tensorboard/event_writer.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "runtime/error.h"
#include "runtime/io/crc32c.h"
#include "runtime/io/input_file.h"
#include "runtime/io/tensorboard/event.pb.h"

namespace lintrain {
namespace {

constexpr char kFilePrefix[] = "events.out.tfevents.";

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void put_le(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

// Writes all of `data` at the end of fd; 0 or the errno of the failure.
int write_all(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n < 0 ? errno : EIO;
    done += static_cast<size_t>(n);
  }
  return 0;
}

std::string serialize(double wall_time, int64_t step, const tb::Event& body) {
  tb::Event e = body;
  e.set_wall_time(wall_time);
  e.set_step(step);
  std::string out;
  e.SerializeToString(&out);
  return out;
}

}  // namespace

std::string tfrecord_frame(const std::string& data) {
  std::string out;
  out.reserve(data.size() + 16);
  put_le(out, data.size(), 8);
  put_le(out, crc32c_mask(crc32c(out.data(), 8)), 4);
  out += data;
  put_le(out, crc32c_mask(crc32c(data.data(), data.size())), 4);
  return out;
}

std::string new_event_file_path(const std::string& dir) {
  long long t = static_cast<long long>(std::time(nullptr));
  if (DIR* d = ::opendir(dir.c_str())) {
    while (const dirent* entry = ::readdir(d)) {
      const char* name = entry->d_name;
      if (std::strncmp(name, kFilePrefix, sizeof kFilePrefix - 1) != 0) continue;
      const long long seen = std::strtoll(name + sizeof kFilePrefix - 1, nullptr, 10);
      if (seen >= t) t = seen + 1;
    }
    ::closedir(d);
  }
  char host[256] = "localhost";
  if (::gethostname(host, sizeof host - 1) != 0) std::strcpy(host, "localhost");
  host[sizeof host - 1] = '\0';
  char name[400];
  std::snprintf(name, sizeof name, "%s%010lld.%s.%d.0", kFilePrefix, t, host, static_cast<int>(::getpid()));
  return dir + "/" + name;
}

EventFileWriter::EventFileWriter(std::string path, EventWriterOptions options)
    : path_(std::move(path)), options_(std::move(options)) {
  if (options_.queue_capacity == 0) options_.queue_capacity = 1;
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    warn(str_cat("lintrain: warning: cannot create TensorBoard event file ", path_, ": ", std::strerror(errno),
                 "; training goes on without it (metrics.jsonl has the same scalars)\n"));
    finished_ = true;
    return;
  }
  tb::Event version;
  version.set_file_version("brain.Event:2");
  held_.push_back(tfrecord_frame(serialize(unix_now(), 0, version)));
  write_held();
  thread_ = std::thread([this] { run(); });
}

EventFileWriter::~EventFileWriter() { finish(); }

void EventFileWriter::warn(const std::string& text) const {
  if (options_.warn) options_.warn(text);
  else std::fputs(text.c_str(), stderr);
}

void EventFileWriter::add_scalars(int64_t step, const std::string& prefix,
                                  const std::vector<std::pair<std::string, double>>& values) {
  Pending p{unix_now(), step, false, {}};
  p.values.reserve(values.size());
  for (const auto& [name, v] : values) p.values.emplace_back(prefix + name, static_cast<float>(v));
  bool warn_full = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (finished_ || stopping_) {
      ++dropped_;
      return;
    }
    if (queue_.size() >= options_.queue_capacity) {
      ++dropped_;
      warn_full = !queue_full_warned_;
      queue_full_warned_ = true;
    } else {
      queue_.push_back(std::move(p));
    }
  }
  if (warn_full)
    warn(str_cat("lintrain: warning: the TensorBoard queue is full (", options_.queue_capacity,
                 " events since the last write to ", path_, "); events are dropped and counted, training "
                 "is not held up\n"));
}

void EventFileWriter::add_session_start(int64_t step) {
  std::lock_guard<std::mutex> lock(mu_);
  if (finished_ || stopping_) return;
  // Not subject to the capacity: one per run, and the purge depends on it.
  queue_.push_back(Pending{unix_now(), step, true, {}});
}

void EventFileWriter::run() {
  std::unique_lock<std::mutex> lock(mu_);
  const auto period = std::chrono::duration<double>(options_.flush_every_s);
  for (;;) {
    wake_.wait_for(lock, period, [&] { return stopping_; });
    std::vector<Pending> batch;
    batch.swap(queue_);
    const bool stop = stopping_;
    lock.unlock();
    for (const Pending& p : batch) {
      tb::Event body;
      if (p.session_start) {
        body.mutable_session_log()->set_status(tb::SessionLog::START);
      } else {
        tb::Summary* summary = body.mutable_summary();
        for (const auto& [tag, v] : p.values) {
          tb::SummaryValue* value = summary->add_value();
          value->set_tag(tag);
          value->set_simple_value(v);
        }
      }
      if (held_.size() >= options_.queue_capacity) {  // the disk has been failing for a while
        held_.pop_front();
        ++dropped_;
      }
      held_.push_back(tfrecord_frame(serialize(p.wall_time, p.step, body)));
    }
    write_held();
    lock.lock();
    if (stop) break;
  }
}

// Writes the held records as one piece; after a failed or short write the
// file is cut back to its last complete record, so a reader never meets a
// torn one followed by good ones.
void EventFileWriter::write_held() {
  if (held_.empty()) return;
  std::string data;
  for (const std::string& r : held_) data += r;
  const int err = write_all(fd_, data);
  if (err != 0) {
    // A file that cannot be cut back (a device) is left as it is.
    if (::ftruncate(fd_, static_cast<off_t>(good_size_)) != 0) errno = 0;
    last_error_ = write_error_text(err);
    if (!failing_) {
      failing_ = true;
      warn(str_cat("lintrain: warning: cannot write TensorBoard event file ", path_, ": ", last_error_,
                   "; training goes on and the events are kept (up to ", options_.queue_capacity,
                   ") until the file can be written again\n"));
    }
    return;
  }
  good_size_ += data.size();
  written_ += held_.size();
  held_.clear();
  if (failing_) {
    failing_ = false;
    warn(str_cat("lintrain: ", path_, " can be written again; the held TensorBoard events are in it\n"));
  }
}

void EventFileWriter::finish() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (finished_) return;
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  {
    std::lock_guard<std::mutex> lock(mu_);
    finished_ = true;
  }
  dropped_ += held_.size();  // the last write failed too: these never made it
  held_.clear();
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (dropped_ > 0)
    warn(str_cat("lintrain: warning: ", loss_report(), "\n"));
}

std::string EventFileWriter::loss_report() const {
  if (dropped_ == 0) return "";
  return str_cat(dropped_.load(), " TensorBoard events did not reach ", path_,
                 last_error_.empty() ? std::string() : str_cat(" (", last_error_, ")"),
                 "; metrics.jsonl has every scalar");
}

}  // namespace lintrain
