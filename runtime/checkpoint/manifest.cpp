#include "runtime/checkpoint/manifest.h"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <set>

#include "runtime/checkpoint/checksum.h"
#include "runtime/error.h"
#include "runtime/io/json.h"

namespace lintrain {
namespace {

constexpr int kMaxWorld = 1 << 20;
constexpr int64_t kMaxStep = int64_t{1} << 53;

using Json = nlohmann::json;
using OrderedJson = nlohmann::ordered_json;

OrderedJson files_json(const std::vector<FileRecord>& files) {
  OrderedJson out = OrderedJson::array();
  for (const FileRecord& f : files)
    out.push_back({{"name", f.name}, {"bytes", f.bytes}, {"xxh3_64", xxh3_hex(f.xxh3)}});
  return out;
}

// Field access that turns every shape error into one IoError naming `where`.
struct Reader {
  const std::string& where;
  [[noreturn]] void fail(const std::string& what) const {
    throw IoError(str_cat(where, ": ", what, " (the file is damaged or was not written by lintrain)"));
  }
  const Json& field(const Json& obj, const char* key) const {
    if (!obj.is_object()) fail("expected a JSON object");
    const auto v = obj.find(key);
    if (v == obj.end()) fail(str_cat("field '", key, "' is missing"));
    return *v;
  }
  uint64_t u64(const Json& obj, const char* key) const {
    const Json& v = field(obj, key);
    if (!v.is_number_unsigned()) fail(str_cat("field '", key, "' is not a non-negative integer"));
    return v.get<uint64_t>();
  }
  int small_int(const Json& obj, const char* key, int lo, int hi) const {
    const uint64_t v = u64(obj, key);
    if (v < static_cast<uint64_t>(lo) || v > static_cast<uint64_t>(hi))
      fail(str_cat("field '", key, "' is ", v, ", outside [", lo, ", ", hi, "]"));
    return static_cast<int>(v);
  }
  // Checked before the cast: 2^63 and above must not turn negative.
  int64_t step(const Json& obj) const {
    const uint64_t s = u64(obj, "step");
    if (s > static_cast<uint64_t>(kMaxStep)) fail(str_cat("step ", s, " is out of range (at most 2^53)"));
    return static_cast<int64_t>(s);
  }
  const std::string& str(const Json& obj, const char* key) const {
    const Json& v = field(obj, key);
    if (!v.is_string()) fail(str_cat("field '", key, "' is not a string"));
    return v.get_ref<const std::string&>();
  }
  uint64_t hash(const Json& obj, const char* key) const {
    uint64_t h;
    if (!parse_xxh3_hex(str(obj, key), &h)) fail(str_cat("field '", key, "' is not 16 hex digits"));
    return h;
  }
  const Json& array(const Json& obj, const char* key) const {
    const Json& v = field(obj, key);
    if (!v.is_array()) fail(str_cat("field '", key, "' is not an array"));
    return v;
  }
  std::vector<FileRecord> files(const Json& obj) const {
    std::vector<FileRecord> out;
    std::set<std::string> names;
    for (const Json& f : array(obj, "files")) {
      FileRecord r{str(f, "name"), u64(f, "bytes"), hash(f, "xxh3_64")};
      if (!valid_file_name(r.name)) fail(str_cat("file name '", r.name, "' is not a plain file name"));
      if (!names.insert(r.name).second) fail(str_cat("file '", r.name, "' is listed twice"));
      out.push_back(std::move(r));
    }
    return out;
  }
};

Json parse_or_fail(const std::string& text, const Reader& r) {
  try {
    return parse_json(text);
  } catch (const Error& e) {
    r.fail(str_cat("not valid JSON: ", e.what()));
  }
}

}  // namespace

uint64_t Manifest::bytes() const {
  uint64_t n = 0;
  for (const FileRecord& f : files) n += f.bytes;
  return n;
}

const FileRecord* Manifest::file(const std::string& name) const {
  for (const FileRecord& f : files)
    if (f.name == name) return &f;
  return nullptr;
}

std::string manifest_to_json(const Manifest& m) {
  OrderedJson ranks = OrderedJson::array();
  for (const RankRecord& r : m.ranks)
    ranks.push_back({{"rank", r.rank}, {"replica_xxh3_64", xxh3_hex(r.replica_xxh3)}, {"files", r.files}});
  const OrderedJson manifest = {{"format", kCheckpointFormat},
                                {"version", m.version},
                                {"step", m.step},
                                {"job", m.job},
                                {"created_unix", m.created_unix},
                                {"world_size", m.world_size},
                                {"layout", {{"data", m.data}, {"sequence", m.sequence}}},
                                {"files", files_json(m.files)},
                                {"ranks", ranks}};
  return dump_json(manifest, 2) + "\n";
}

Manifest parse_manifest(const std::string& text, const std::string& where) {
  const Reader r{where};
  const Json v = parse_or_fail(text, r);
  if (r.str(v, "format") != kCheckpointFormat)
    r.fail(str_cat("format is '", r.str(v, "format"), "', not '", kCheckpointFormat, "'"));
  Manifest m;
  m.version = r.small_int(v, "version", 0, 1 << 30);
  if (m.version != kCheckpointVersion)
    throw IoError(str_cat(where, ": checkpoint format version ", m.version, ", but this lintrain reads version ",
                          kCheckpointVersion, "; use the lintrain that wrote it (or a newer one)"));
  m.step = r.step(v);
  m.job = r.str(v, "job");
  if (!valid_job_id(m.job)) r.fail("job is not a job id");
  const Json& created = r.field(v, "created_unix");
  if (!created.is_number()) r.fail("created_unix is not a number");
  m.created_unix = created.get<double>();
  m.world_size = r.small_int(v, "world_size", 1, kMaxWorld);
  const Json& layout = r.field(v, "layout");
  m.data = r.small_int(layout, "data", 1, kMaxWorld);
  m.sequence = r.small_int(layout, "sequence", 1, kMaxWorld);
  if (static_cast<int64_t>(m.data) * m.sequence != m.world_size)
    r.fail(str_cat("layout data x sequence = ", m.data, " x ", m.sequence, " is not world_size ", m.world_size));
  m.files = r.files(v);
  std::vector<bool> seen(static_cast<size_t>(m.world_size), false);
  for (const Json& rank : r.array(v, "ranks")) {
    RankRecord rr;
    rr.rank = r.small_int(rank, "rank", 0, m.world_size - 1);
    if (seen[static_cast<size_t>(rr.rank)]) r.fail(str_cat("rank ", rr.rank, " is listed twice"));
    seen[static_cast<size_t>(rr.rank)] = true;
    rr.replica_xxh3 = r.hash(rank, "replica_xxh3_64");
    for (const Json& f : r.array(rank, "files")) {
      if (!f.is_string() || !m.file(f.get<std::string>()))
        r.fail(str_cat("rank ", rr.rank, " lists a file the manifest does not"));
      rr.files.push_back(f.get<std::string>());
    }
    m.ranks.push_back(std::move(rr));
  }
  for (int i = 0; i < m.world_size; ++i)
    if (!seen[static_cast<size_t>(i)]) r.fail(str_cat("rank ", i, " of ", m.world_size, " is missing"));
  return m;
}

std::string arrival_to_json(const Arrival& a) {
  const OrderedJson arrival = {{"job", a.job},
                               {"step", a.step},
                               {"world_size", a.world_size},
                               {"rank", a.rank},
                               {"layout", {{"data", a.data}, {"sequence", a.sequence}}},
                               {"replica_xxh3_64", xxh3_hex(a.replica_xxh3)},
                               {"keep", a.keep},
                               {"files", files_json(a.files)}};
  return dump_json(arrival, 2) + "\n";
}

Arrival parse_arrival(const std::string& text, const std::string& where) {
  const Reader r{where};
  const Json v = parse_or_fail(text, r);
  Arrival a;
  a.job = r.str(v, "job");
  if (!valid_job_id(a.job)) r.fail("job is not a job id");
  a.step = r.step(v);
  a.world_size = r.small_int(v, "world_size", 1, kMaxWorld);
  a.rank = r.small_int(v, "rank", 0, a.world_size - 1);
  const Json& layout = r.field(v, "layout");
  a.data = r.small_int(layout, "data", 1, kMaxWorld);
  a.sequence = r.small_int(layout, "sequence", 1, kMaxWorld);
  a.replica_xxh3 = r.hash(v, "replica_xxh3_64");
  a.keep = r.small_int(v, "keep", 0, 1 << 30);
  a.files = r.files(v);
  return a;
}

std::string step_dir_name(int64_t step) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "step-%08lld", static_cast<long long>(step));
  return buf;
}

bool parse_step_dir_name(const std::string& name, int64_t* step) {
  if (name.size() < 13 || name.size() > 21 || name.compare(0, 5, "step-") != 0) return false;
  int64_t v = 0;
  for (size_t i = 5; i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9') return false;
    v = v * 10 + (name[i] - '0');
  }
  if (step_dir_name(v) != name) return false;  // one spelling per step
  *step = v;
  return true;
}

bool valid_file_name(const std::string& name) {
  if (name.empty() || name.size() > 128 || name == kManifestName) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-'))) return false;
  }
  return true;
}

bool valid_job_id(const std::string& job) {
  uint64_t unused;
  return parse_xxh3_hex(job, &unused);
}

std::string new_job_id() {
  uint64_t v = 0;
  const int fd = ::open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd < 0 || ::read(fd, &v, sizeof v) != static_cast<ssize_t>(sizeof v)) {
    // No /dev/urandom: the clock, the pid and the library's generator.
    std::random_device rd;
    v = (static_cast<uint64_t>(rd()) << 32) ^ rd() ^
        static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) ^
        (static_cast<uint64_t>(::getpid()) << 17);
  }
  if (fd >= 0) ::close(fd);
  return xxh3_hex(v);
}

}  // namespace lintrain
