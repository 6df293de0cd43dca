#include "runtime/checkpoint/store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "runtime/error.h"
#include "runtime/io/input_file.h"
#include "runtime/failpoint.h"
#include "runtime/io/mapped_file.h"

namespace fs = std::filesystem;

namespace lintrain {
namespace {

constexpr const char* kPendingPrefix = ".pending-";
constexpr const char* kDeletingPrefix = ".deleting-";
constexpr const char* kArrivalPrefix = "arrival-rank-";
constexpr const char* kWriterLock = ".writer.lock";

double now_unix() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string arrival_name(int rank) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%s%05d.json", kArrivalPrefix, rank);
  return buf;
}

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

// Newest modification time of a folder and the files directly in it: a
// pending save is active while any of its files grows.
double newest_mtime(const std::string& path) {
  struct stat st;
  double newest = ::stat(path.c_str(), &st) == 0 ? static_cast<double>(st.st_mtim.tv_sec) + st.st_mtim.tv_nsec * 1e-9 : 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(path, ec)) {
    if (::stat(e.path().c_str(), &st) == 0)
      newest = std::max(newest, static_cast<double>(st.st_mtim.tv_sec) + st.st_mtim.tv_nsec * 1e-9);
  }
  return newest;
}

// Temporary files of AtomicFileWriter: "<name>.tmp.<pid>.<n>".
bool is_temp_file(const std::string& name) { return name.find(".tmp.") != std::string::npos; }

uint64_t hash_file(const std::string& path, uint64_t* size) {
  const MappedFile f = MappedFile::open(path);
  *size = f.size();
  return xxh3_of(f.data(), f.size());
}

// Renames a published folder out of sight, then deletes it: a reader sees the
// checkpoint whole or not at all.
void delete_checkpoint(const std::string& dir, const std::string& path) {
  const std::string trash = str_cat(dir, "/", kDeletingPrefix, fs::path(path).filename().string(), "-", new_job_id());
  if (::rename(path.c_str(), trash.c_str()) != 0) return;
  fsync_directory(dir);
  remove_tree(trash);
}

}  // namespace

// ---- helpers ----------------------------------------------------------------

std::string read_small_file(const std::string& path, size_t max_bytes) {
  return read_input_file(path, "checkpoint file", max_bytes);
}

void fsync_directory(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);  // some file systems refuse it for directories; the data is safe then
  ::close(fd);
}

void remove_tree(const std::string& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
}

// ---- PartWriter -------------------------------------------------------------

PartWriter::PartWriter(const std::string& path, uint64_t expected_bytes, bool direct_io)
    : name_(fs::path(path).filename().string()), expected_(expected_bytes), out_(path, direct_io) {}

void PartWriter::write(const void* data, size_t nbytes) {
  if (hash_.bytes() + nbytes > expected_)
    throw IoError(str_cat("[checkpoint] part '", name_, "' got more than the ", expected_, " bytes announced"));
  out_.write(data, nbytes);
  hash_.update(data, nbytes);
}

FileRecord PartWriter::finish(const uint64_t* expected_xxh3) {
  if (hash_.bytes() != expected_)
    throw IoError(str_cat("[checkpoint] part '", name_, "' is ", hash_.bytes(), " bytes, ", expected_,
                          " were announced: it did not arrive whole"));
  const uint64_t h = hash_.digest();
  if (expected_xxh3 && *expected_xxh3 != h)
    throw IoError(str_cat("[checkpoint] part '", name_, "' arrived with checksum ", xxh3_hex(h), " but was sent with ",
                          xxh3_hex(*expected_xxh3), ": it was damaged on the way"));
  out_.commit();
  return FileRecord{name_, expected_, h};
}

// ---- ReadLock ----------------------------------------------------------------

ReadLock::ReadLock(const std::string& checkpoint_path) {
  fd_ = ::open((checkpoint_path + "/" + kManifestName).c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd_ >= 0 && ::flock(fd_, LOCK_SH) != 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

ReadLock::~ReadLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the lock
}

// ---- CheckpointStore ----------------------------------------------------------

CheckpointStore::CheckpointStore(std::string dir, bool create) : dir_(std::move(dir)) {
  while (dir_.size() > 1 && dir_.back() == '/') dir_.pop_back();
  if (create) {
    create_output_dir(dir_, "checkpoint directory");
    return;
  }
  struct stat st;
  if (::stat(dir_.c_str(), &st) != 0)
    throw IoError(str_cat("[checkpoint] ", input_error_text(dir_, "checkpoint directory", errno)));
  if (!S_ISDIR(st.st_mode))
    throw IoError(str_cat("[checkpoint] '", dir_, "' is ", non_regular_kind(st.st_mode).empty() ? "a file" :
                          non_regular_kind(st.st_mode), ", not a checkpoint directory"));
}

CheckpointStore::~CheckpointStore() {
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

void CheckpointStore::lock_for_writing(const std::string& who, const std::string& dir_setting) {
  if (lock_fd_ >= 0) return;
  const std::string path = dir_ + "/" + kWriterLock;
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw IoError(str_cat("[checkpoint] cannot create '", path, "': ", std::strerror(errno)));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    std::string holder = read_small_file(path, 4096);
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
    ::close(fd);
    throw IoError(str_cat("[checkpoint] '", dir_, "' is already being written by ",
                          holder.empty() ? std::string("another process") : holder,
                          "; two writers cannot share a checkpoint directory: stop the other one or choose another ",
                          dir_setting));
  }
  const std::string text = who + "\n";
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, text.data(), text.size(), 0) < 0) {
    // The lock holds without the note; only the message to a second writer is poorer.
  }
  lock_fd_ = fd;
}

void CheckpointStore::remove_stale(double max_idle_s) {
  std::error_code ec;
  const double now = now_unix();
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    const std::string name = e.path().filename().string();
    const std::string path = e.path().string();
    if (starts_with(name, kDeletingPrefix)) {
      remove_tree(path);
    } else if (starts_with(name, kPendingPrefix)) {
      if (max_idle_s >= 0 && now - newest_mtime(path) >= max_idle_s) {
        remove_tree(path);
        continue;
      }
      std::error_code ec2;
      for (const auto& f : fs::directory_iterator(path, ec2))
        if (is_temp_file(f.path().filename().string())) fs::remove(f.path(), ec2);
    } else if (is_temp_file(name)) {
      fs::remove(e.path(), ec);
    }
  }
}

std::string CheckpointStore::pending_path(const std::string& job, int64_t step) const {
  return str_cat(dir_, "/", kPendingPrefix, step_dir_name(step).substr(5), "-", job);
}

std::string CheckpointStore::path_of(int64_t step) const { return dir_ + "/" + step_dir_name(step); }

std::string CheckpointStore::published_job(int64_t step) const {
  const std::string path = path_of(step);
  if (!inspect_checkpoint(path).complete) return "";
  try {
    return parse_manifest(read_small_file(path + "/" + kManifestName), path).job;
  } catch (const IoError&) {
    return "";  // removed or damaged since it was inspected
  }
}

bool CheckpointStore::pending(const std::string& job, int64_t step) const {
  std::error_code ec;
  return fs::is_directory(pending_path(job, step), ec);
}

std::string CheckpointStore::begin_save(const std::string& job, int64_t step, double stale_s) {
  LT_CHECK(valid_job_id(job), "[checkpoint] '", job, "' is not a job id");
  const std::string mine = pending_path(job, step);
  if (stale_s >= 0) {
    const std::string prefix = str_cat(kPendingPrefix, step_dir_name(step).substr(5), "-");
    const double now = now_unix();
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir_, ec)) {
      const std::string name = e.path().filename().string();
      if (!starts_with(name, prefix.c_str()) || e.path().string() == mine) continue;
      const double idle = now - newest_mtime(e.path().string());
      if (idle < stale_s)
        throw IoError(str_cat("[checkpoint] step ", step, " is already being saved by another writer (job ",
                              name.substr(prefix.size()), ", active ", static_cast<int>(idle),
                              " s ago); only one job may save a step"));
      remove_tree(e.path().string());
    }
  }
  if (::mkdir(mine.c_str(), 0755) != 0 && errno != EEXIST)
    throw IoError(str_cat("[checkpoint] cannot create '", mine, "': ", std::strerror(errno)));
  return mine;
}

std::unique_ptr<PartWriter> CheckpointStore::open_part(const std::string& job, int64_t step,
                                                       const std::string& name, uint64_t bytes, bool direct_io) {
  LT_CHECK(valid_file_name(name), "[checkpoint] '", name, "' is not a valid checkpoint file name");
  return std::make_unique<PartWriter>(pending_path(job, step) + "/" + name, bytes, direct_io);
}

void CheckpointStore::record_arrival(const Arrival& a) {
  write_file_atomic(pending_path(a.job, a.step) + "/" + arrival_name(a.rank), arrival_to_json(a));
}

std::vector<Arrival> CheckpointStore::arrivals(const std::string& job, int64_t step) const {
  std::vector<Arrival> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(pending_path(job, step), ec)) {
    const std::string name = e.path().filename().string();
    if (!starts_with(name, kArrivalPrefix) || is_temp_file(name)) continue;
    Arrival a = parse_arrival(read_small_file(e.path().string()), e.path().string());
    if (a.job != job || a.step != step || arrival_name(a.rank) != name)
      throw IoError(str_cat("[checkpoint] ", e.path().string(), " belongs to job ", a.job, " step ", a.step,
                            " rank ", a.rank, ", not to this save"));
    out.push_back(std::move(a));
  }
  std::sort(out.begin(), out.end(), [](const Arrival& x, const Arrival& y) { return x.rank < y.rank; });
  return out;
}

bool CheckpointStore::try_publish(const std::string& job, int64_t step, const std::set<std::string>& trusted) {
  const std::string pending = pending_path(job, step);
  const std::vector<Arrival> arrived = arrivals(job, step);
  if (arrived.empty()) return false;
  const Arrival& first = arrived.front();
  for (const Arrival& a : arrived)
    if (a.world_size != first.world_size || a.data != first.data || a.sequence != first.sequence)
      throw IoError(str_cat("[checkpoint] save of step ", step, ": rank ", a.rank, " reports world size ",
                            a.world_size, " (DP ", a.data, " x SP ", a.sequence, "), rank ", first.rank, " reports ",
                            first.world_size, " (DP ", first.data, " x SP ", first.sequence, ")"));
  if (static_cast<int>(arrived.size()) < first.world_size) return false;

  std::error_code ec;
  Manifest m;
  m.step = step;
  m.job = job;
  m.created_unix = now_unix();
  m.world_size = first.world_size;
  m.data = first.data;
  m.sequence = first.sequence;
  const Arrival* lead = nullptr;
  for (const Arrival& a : arrived) {
    if (a.rank == 0) lead = &a;
    RankRecord r{a.rank, a.replica_xxh3, {}};
    for (const FileRecord& f : a.files) {
      if (m.file(f.name))
        throw IoError(str_cat("[checkpoint] save of step ", step, ": file '", f.name, "' written by two ranks"));
      const std::string path = pending + "/" + f.name;
      uint64_t size = 0;
      if (trusted.count(f.name)) {
        struct stat st;
        if (::stat(path.c_str(), &st) != 0)
          throw IoError(str_cat("[checkpoint] save of step ", step, ": '", f.name, "' is missing"));
        size = static_cast<uint64_t>(st.st_size);
        if (size != f.bytes)
          throw IoError(str_cat("[checkpoint] save of step ", step, ": '", f.name, "' is ", size, " bytes, rank ",
                                a.rank, " wrote ", f.bytes));
      } else {
        const uint64_t h = hash_file(path, &size);
        if (size != f.bytes || h != f.xxh3)
          throw IoError(str_cat("[checkpoint] save of step ", step, ": '", f.name, "' (rank ", a.rank,
                                ") did not arrive intact: ", size, " bytes with checksum ", xxh3_hex(h), ", expected ",
                                f.bytes, " bytes with ", xxh3_hex(f.xxh3)));
      }
      m.files.push_back(f);
      r.files.push_back(f.name);
    }
    m.ranks.push_back(std::move(r));
  }
  for (const Arrival& a : arrived)
    if (a.replica_xxh3 != first.replica_xxh3)
      throw ReplicaMismatchError(str_cat("[checkpoint] save of step ", step, ": rank ", a.rank,
                          "'s copy of the replicated state (weights, optimizer state, counters) differs from rank ",
                          first.rank, "'s (digest ", xxh3_hex(a.replica_xxh3), " vs ", xxh3_hex(first.replica_xxh3),
                          "): the replicas have diverged, so training is no longer one model; not publishing"));

  // The folder becomes exactly the files the manifest lists: arrival records
  // and leftovers of retried uploads go.
  for (const auto& e : fs::directory_iterator(pending, ec))
    if (!m.file(e.path().filename().string())) fs::remove(e.path(), ec);
  failpoint_kill("ckpt.before-manifest", step);
  write_file_atomic(pending + "/" + kManifestName, manifest_to_json(m));
  fsync_directory(pending);
  failpoint_kill("ckpt.before-rename", step);

  const std::string final_path = path_of(step);
  if (fs::exists(final_path, ec)) {
    // The run went back (resumed from an older checkpoint) and reached this
    // step again: the new history replaces the old one.
    const std::string trash = str_cat(dir_, "/", kDeletingPrefix, step_dir_name(step), "-", new_job_id());
    if (::rename(final_path.c_str(), trash.c_str()) != 0)
      throw IoError(str_cat("[checkpoint] cannot replace '", final_path, "': ", std::strerror(errno)));
    remove_tree(trash);
  }
  if (::rename(pending.c_str(), final_path.c_str()) != 0)
    throw IoError(str_cat("[checkpoint] cannot publish '", final_path, "': rename failed: ", std::strerror(errno)));
  fsync_directory(dir_);
  failpoint_kill("ckpt.before-latest", step);
  write_file_atomic(dir_ + "/" + kLatestName, step_dir_name(step) + "\n");
  failpoint_kill("ckpt.before-retention", step);
  if (lead && lead->keep > 0) apply_retention(lead->keep);
  return true;
}

void CheckpointStore::abandon(const std::string& job, int64_t step) { remove_tree(pending_path(job, step)); }

void CheckpointStore::apply_retention(int keep) {
  LT_CHECK(keep >= 1, "[checkpoint] retention must keep at least one checkpoint");
  const std::vector<CheckpointInfo> all = list();
  const std::string latest_name = latest();
  // Checkpoints after the one `latest` names are of another history: a run
  // that went back (resume: none, resume: PATH, or past checkpoints that did
  // not verify). They may be the only copy of that run, so they are neither
  // counted nor deleted here; a save of the same step replaces one.
  int64_t latest_step = -1;
  if (!latest_name.empty()) parse_step_dir_name(latest_name, &latest_step);
  int complete_seen = 0;
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    if (latest_step >= 0 && it->step > latest_step) continue;
    if (!it->complete) continue;
    if (++complete_seen <= keep) continue;
    if (fs::path(it->path).filename().string() == latest_name) continue;
    // A reader's shared lock on the manifest makes this exclusive try fail:
    // that checkpoint is skipped now and deleted by a later save.
    const int fd = ::open((it->path + "/" + kManifestName).c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) continue;
    if (::flock(fd, LOCK_EX | LOCK_NB) == 0) delete_checkpoint(dir_, it->path);
    ::close(fd);
  }
}

std::vector<CheckpointInfo> CheckpointStore::list() const {
  std::vector<CheckpointInfo> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    int64_t step;
    if (!parse_step_dir_name(e.path().filename().string(), &step)) continue;
    CheckpointInfo info = inspect_checkpoint(e.path().string());
    info.step = step;
    out.push_back(std::move(info));
  }
  std::sort(out.begin(), out.end(), [](const CheckpointInfo& a, const CheckpointInfo& b) { return a.step < b.step; });
  return out;
}

std::string CheckpointStore::latest() const {
  try {
    std::string s = read_small_file(dir_ + "/" + kLatestName, 256);
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
    int64_t step;
    return parse_step_dir_name(s, &step) ? s : "";
  } catch (const IoError&) {
    return "";
  }
}

std::string CheckpointStore::latest_problem() const {
  std::error_code ec;
  if (!fs::exists(dir_ + "/" + kLatestName, ec)) return "";
  std::string s;
  try {
    s = read_small_file(dir_ + "/" + kLatestName, 256);
  } catch (const IoError& e) {
    return str_cat("cannot be read (", e.what(), ")");
  }
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  int64_t step;
  if (parse_step_dir_name(s, &step)) return "";
  for (char& c : s)
    if (static_cast<unsigned char>(c) < 0x20) c = '?';
  return str_cat("holds '", s.size() > 40 ? s.substr(0, 40) + "..." : s, "', not a checkpoint name like ",
                 step_dir_name(12));
}

std::string checkpoint_area_of(const std::string& path) {
  std::error_code ec;
  fs::path p = fs::weakly_canonical(fs::absolute(path, ec), ec);
  if (ec) return "";
  while (true) {
    int64_t step;
    if (parse_step_dir_name(p.filename().string(), &step) && fs::exists(p / kManifestName, ec)) return p.string();
    if (fs::exists(p / kWriterLock, ec)) return p.string();
    if (fs::is_regular_file(p / kLatestName, ec)) {
      const CheckpointStore store(p.string());
      const std::string latest = store.latest();
      if (!latest.empty() && fs::is_directory(p / latest, ec)) return p.string();
    }
    if (!p.has_relative_path()) return "";
    p = p.parent_path();
  }
}

CheckpointInfo inspect_checkpoint(const std::string& path) {
  CheckpointInfo info;
  info.path = path;
  parse_step_dir_name(fs::path(path).filename().string(), &info.step);
  try {
    const Manifest m = parse_manifest(read_small_file(path + "/" + kManifestName), path + "/" + kManifestName);
    info.created_unix = m.created_unix;
    info.bytes = m.bytes();
    info.world_size = m.world_size;
    info.data = m.data;
    info.sequence = m.sequence;
    if (m.step != info.step && fs::path(path).filename().string().rfind("step-", 0) == 0) {
      info.problem = str_cat("its manifest says step ", m.step);
      return info;
    }
    for (const FileRecord& f : m.files) {
      struct stat st;
      if (::stat((path + "/" + f.name).c_str(), &st) != 0) {
        info.problem = str_cat("file '", f.name, "' is missing");
        return info;
      }
      if (static_cast<uint64_t>(st.st_size) != f.bytes) {
        info.problem = str_cat("file '", f.name, "' is ", st.st_size, " bytes, the manifest says ", f.bytes);
        return info;
      }
    }
    info.complete = true;
  } catch (const IoError& e) {
    info.problem = e.what();
  }
  return info;
}

}  // namespace lintrain
