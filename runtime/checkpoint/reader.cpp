#include "runtime/checkpoint/reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>
#include <vector>

#include "runtime/checkpoint/checksum.h"
#include "runtime/cpu/copy.h"
#include "runtime/device.h"
#include "runtime/error.h"
#include "runtime/io/input_file.h"
#include "runtime/io/mapped_file.h"

namespace fs = std::filesystem;

namespace lintrain {
namespace {

constexpr const char* kPartSuffix = ".safetensors";

// XXH3 of the `size`-byte file at `path`, read in 8 MiB pieces into one
// reused buffer (buffered: the pages stay in the page cache for the mapping
// that follows, and ranks on one node share them). Throws IoError when the
// file is not `size` bytes or cannot be read.
uint64_t hash_file(const std::string& path, uint64_t size) {
  const int fd = open_input_file(path, "checkpoint file");
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || static_cast<uint64_t>(st.st_size) != size) {
    ::close(fd);
    throw IoError(str_cat("[checkpoint] ", path, " is ", st.st_size, " bytes, the manifest says ", size,
                          " (truncated or replaced)"));
  }
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  std::vector<uint8_t> buf(size_t{8} << 20);
  Xxh3 hash;
  uint64_t got = 0;
  while (got < size) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : EIO;  // 0: the file shrank under us
      ::close(fd);
      throw IoError(str_cat("[checkpoint] cannot read ", path, ": ", std::strerror(err)));
    }
    hash.update(buf.data(), static_cast<size_t>(n));
    got += static_cast<uint64_t>(n);
  }
  ::close(fd);
  return hash.digest();
}

class DirectorySource : public CheckpointSource {
 public:
  explicit DirectorySource(const std::string& dir) : store_(dir) {}
  std::string describe() const override { return store_.dir(); }
  std::vector<CheckpointInfo> list() override { return store_.list(); }
  std::string where(int64_t step) const override { return store_.path_of(step); }
  std::string read_manifest(int64_t step) override {
    return read_small_file(store_.path_of(step) + "/" + kManifestName);
  }
  SafeTensorFile open_verified(int64_t step, const FileRecord& record) override {
    const std::string path = store_.path_of(step) + "/" + record.name;
    const uint64_t h = hash_file(path, record.bytes);
    if (h != record.xxh3)
      throw IoError(str_cat("[checkpoint] ", path, " has checksum ", xxh3_hex(h), ", the manifest says ",
                            xxh3_hex(record.xxh3), " (the file is damaged)"));
    // Mapped, not copied: the pages just hashed are in the page cache.
    return load_safetensors(path, /*populate=*/true);
  }
  std::shared_ptr<void> hold(int64_t step) override { return std::make_shared<ReadLock>(store_.path_of(step)); }
  int64_t latest_step() override {
    int64_t step = -1;
    const std::string name = store_.latest();
    if (name.empty() || !parse_step_dir_name(name, &step)) return -1;
    return step;
  }
  std::string latest_problem() override { return store_.latest_problem(); }

 private:
  CheckpointStore store_;
};

std::string part_of(const std::string& file) {
  const size_t n = std::strlen(kPartSuffix);
  if (file.size() <= n || file.compare(file.size() - n, n, kPartSuffix) != 0) return "";
  return file.substr(0, file.size() - n);
}

}  // namespace

std::unique_ptr<CheckpointSource> directory_source(const std::string& dir) {
  return std::make_unique<DirectorySource>(dir);
}

const SafeTensorFile& OpenedCheckpoint::part(const std::string& name) const {
  const auto it = parts.find(name);
  if (it == parts.end())
    throw IoError(str_cat("[checkpoint] ", where, " has no ", name, kPartSuffix,
                          " (it was written by a different kind of run)"));
  return it->second;
}

OpenedCheckpoint open_checkpoint(CheckpointSource& source, int64_t step) {
  OpenedCheckpoint c;
  c.where = source.where(step);
  c.hold = source.hold(step);
  c.manifest = parse_manifest(source.read_manifest(step), c.where + "/" + kManifestName);
  if (c.manifest.step != step)
    throw IoError(str_cat("[checkpoint] ", c.where, ": its manifest is for step ", c.manifest.step));
  for (const FileRecord& f : c.manifest.files) {
    const std::string part = part_of(f.name);
    if (part.empty())
      throw IoError(str_cat("[checkpoint] ", c.where, " lists '", f.name, "', which is not a .safetensors part"));
    c.parts.emplace(part, source.open_verified(step, f));
  }
  return c;
}

std::optional<OpenedCheckpoint> open_newest(CheckpointSource& source,
                                            const std::function<void(const std::string&)>& warn) {
  const std::vector<CheckpointInfo> all = source.list();
  // The job that wrote the checkpoint `latest` names: a newer one by another
  // job is not this history's next step (a kill between publish and the
  // pointer update leaves one by the same job).
  const int64_t latest = source.latest_step();
  if (const std::string problem = source.latest_problem(); !problem.empty() && warn)
    warn(str_cat("`latest` in ", source.describe(), " ", problem, "; ignoring it: ",
                 all.empty() ? "there is no checkpoint, so the run starts from step 0"
                             : "resuming from the newest checkpoint that verifies"));
  std::string latest_job;
  // `latest` naming a checkpoint that is not there (removed by hand, another
  // run's pointer copied in): said, with what is done instead, never silent.
  const bool latest_missing =
      latest >= 0 && std::none_of(all.begin(), all.end(), [&](const CheckpointInfo& i) { return i.step == latest; });
  const auto latest_gone = [&](const std::string& instead) {
    if (warn)
      warn(str_cat("`latest` in ", source.describe(), " names ", fs::path(source.where(latest)).filename().string(),
                   ", which is not there; ", instead));
  };
  if (latest >= 0 && !latest_missing) {
    try {
      latest_job = parse_manifest(source.read_manifest(latest), source.where(latest)).job;
    } catch (const IoError&) {
      latest_job.clear();  // latest's checkpoint is damaged or gone: newest first, as without it
    }
  }
  std::vector<std::string> problems;  // the newer checkpoints that failed, newest first
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    std::string problem = it->problem;
    if (it->complete && !latest_job.empty() && it->step > latest) {
      try {
        const Manifest m = parse_manifest(source.read_manifest(it->step), source.where(it->step));
        if (m.job != latest_job) {
          if (warn)
            warn(str_cat("checkpoint ", source.where(it->step), " is newer than ", source.where(latest),
                         ", which `latest` names, but was written by another job (", m.job, ", not ", latest_job,
                         "): it belongs to another history of this directory; following `latest`. To continue "
                         "that one instead set resume: ", source.where(it->step)));
          continue;
        }
      } catch (const IoError&) {
        // Reported below when it is opened.
      }
    }
    if (it->complete) {
      try {
        OpenedCheckpoint c = open_checkpoint(source, it->step);
        if (latest_missing) latest_gone(str_cat("resuming from the newest checkpoint that verifies, ", c.where));
        for (size_t i = 0; i < problems.size() && warn; ++i)
          warn(str_cat("checkpoint ", problems[i], i + 1 == problems.size() ? "; using " + c.where + " instead" : ""));
        return c;
      } catch (const IoError& e) {
        problem = e.what();
      }
    }
    problems.push_back(str_cat(source.where(it->step), " cannot be used: ", problem));
  }
  if (problems.empty()) {
    if (latest_missing)
      latest_gone("it holds no checkpoint, so the run starts from step 0 and its first save rewrites "
                  "`latest`");
    return std::nullopt;
  }
  std::string msg = str_cat("[checkpoint] ", source.describe(), " holds ", problems.size(),
                            problems.size() == 1 ? " checkpoint, which cannot" : " checkpoints, none of which can",
                            " be used: ");
  for (size_t i = 0; i < problems.size(); ++i) msg += str_cat(i ? "; " : "", problems[i]);
  throw NoUsableCheckpointError(msg, std::move(problems));
}

OpenedCheckpoint open_checkpoint_path(const std::string& path,
                                      const std::function<void(const std::string&)>& warn) {
  std::error_code ec;
  if (!fs::is_directory(path, ec))
    throw IoError(str_cat("[checkpoint] '", path, "' is not a directory; give a checkpoint folder (…/step-00000100) "
                          "or a checkpoint directory"));
  fs::path p = fs::path(path).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  int64_t step;
  if (fs::exists(p / kManifestName, ec) || parse_step_dir_name(p.filename().string(), &step)) {
    if (!parse_step_dir_name(p.filename().string(), &step))
      throw IoError(str_cat("[checkpoint] '", path, "' holds a manifest but is not named step-<N>; "
                            "checkpoints are the step-<N> folders of a checkpoint directory"));
    auto source = directory_source(p.parent_path().empty() ? "." : p.parent_path().string());
    return open_checkpoint(*source, step);
  }
  auto source = directory_source(p.string());
  std::optional<OpenedCheckpoint> c = open_newest(*source, warn);
  if (!c) throw IoError(str_cat("[checkpoint] '", path, "' holds no checkpoint (no step-<N> folder)"));
  return std::move(*c);
}

void restore_run_state(const OpenedCheckpoint& ckpt, RunState& state) {
  // What differs, by kind, each with the first few names.
  struct Kind {
    const char* what;
    std::vector<std::string> items;
  } missing{"missing from the checkpoint", {}}, reshaped{"of another dtype or shape", {}},
      foreign{"in the checkpoint but not in this run", {}};
  std::set<std::string> wanted;  // "part/name"
  for (const StateEntry& e : state.entries()) {
    wanted.insert(e.part + "/" + e.name);
    const auto it = ckpt.parts.find(e.part);
    if (it == ckpt.parts.end() || !it->second.contains(e.name)) {
      missing.items.push_back(str_cat(e.part, " tensor '", e.name, "'"));
      continue;
    }
    const SafeTensor& t = it->second.get(e.name);
    if (t.dtype != e.dtype || t.shape != e.shape)
      reshaped.items.push_back(str_cat(e.part, " tensor '", e.name, "' (", safetensors_dtype_name(t.dtype), " ",
                                       shape_str(t.shape), " there, ", safetensors_dtype_name(e.dtype), " ",
                                       shape_str(e.shape), " here)"));
  }
  for (const std::string& part : state.parts()) {
    const auto it = ckpt.parts.find(part);
    if (it == ckpt.parts.end()) continue;
    for (const SafeTensor& t : it->second.tensors())
      if (!wanted.count(part + "/" + t.name)) foreign.items.push_back(str_cat(part, " tensor '", t.name, "'"));
  }
  std::string msg;
  for (const Kind* k : {&missing, &reshaped, &foreign}) {
    if (k->items.empty()) continue;
    msg += str_cat(msg.empty() ? "" : "; ", k->items.size(), " ", k->what, " (");
    constexpr size_t kShown = 2;
    for (size_t i = 0; i < k->items.size() && i < kShown; ++i) msg += str_cat(i ? ", " : "", k->items[i]);
    msg += k->items.size() > kShown ? str_cat(" and ", k->items.size() - kShown, " more)") : ")";
  }
  if (!msg.empty())
    throw StateMismatchError(str_cat("[checkpoint] ", ckpt.where, " does not fit this run: ", msg,
                                     ". It was written by a run with other model or optimizer settings: resume "
                                     "with the same model.* and optim.* keys, or start fresh with resume: none"),
                             msg);
  for (const StateEntry& e : state.entries()) {
    const void* saved = ckpt.parts.at(e.part).get(e.name).data;
    if (e.device == Device::CPU) parallel_copy(e.data, saved, e.nbytes());
    else copy_from_host(e.device, e.data, saved, e.nbytes());
  }
}

}  // namespace lintrain
