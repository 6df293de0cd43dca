#include "runtime/checkpoint/service/server.h"

#include <grpcpp/grpcpp.h>
#include <arpa/inet.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <cstdio>
#include <map>
#include <mutex>
#include <set>
#include <tuple>

#include "runtime/checkpoint/checksum.h"
#include "runtime/checkpoint/manifest.h"
#include "runtime/checkpoint/service/checkpoint.grpc.pb.h"
#include "runtime/checkpoint/service/tcp_probe.h"
#include "runtime/checkpoint/store.h"
#include "runtime/error.h"
#include "runtime/io/input_file.h"
#include "runtime/failpoint.h"
#include "runtime/io/mapped_file.h"
#include "runtime/process.h"

namespace lintrain {
namespace {

namespace pb = ::lintrain::ckpt::v1;
using grpc::ServerContext;
using RpcStatus = grpc::Status;
using grpc::StatusCode;

constexpr int kMaxWorld = 1 << 20;
constexpr int64_t kMaxStep = int64_t{1} << 53;
constexpr size_t kMaxFilesPerRank = 1024;

RpcStatus invalid(const std::string& what) { return RpcStatus(StatusCode::INVALID_ARGUMENT, what); }

bool ends_with(const std::string& s, const char* suffix) {
  const size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

// The checks every request's fields get before anything touches the disk.
RpcStatus check_key(const pb::SaveKey& key) {
  if (!valid_job_id(key.job())) return invalid("job must be 16 lowercase hex digits");
  if (key.step() < 0 || key.step() > kMaxStep) return invalid("step must be in [0, 2^53]");
  return RpcStatus::OK;
}

RpcStatus check_rank(int rank, int world_size) {
  if (world_size < 1 || world_size > kMaxWorld) return invalid("world_size must be in [1, 2^20]");
  if (rank < 0 || rank >= world_size) return invalid("rank must be in [0, world_size)");
  return RpcStatus::OK;
}

RpcStatus check_file_name(const std::string& name) {
  if (!valid_file_name(name) || !ends_with(name, ".safetensors"))
    return invalid(str_cat("file name '", name.substr(0, 200),
                           "' is not a plain file name ending in .safetensors ([A-Za-z0-9][A-Za-z0-9._-]*)"));
  return RpcStatus::OK;
}

// Constant-time comparison: how long it takes says nothing about the token.
bool same_token(const std::string& expected, const std::string& given) {
  unsigned char diff = expected.size() == given.size() ? 0 : 1;
  for (size_t i = 0; i < given.size(); ++i)
    diff |= static_cast<unsigned char>(expected[i % expected.size()] ^ given[i]);
  return diff == 0;
}

std::string host_of(const std::string& listen) {
  if (!listen.empty() && listen[0] == '[') return listen.substr(1, listen.find(']') - 1);
  const size_t colon = listen.rfind(':');
  return colon == std::string::npos ? listen : listen.substr(0, colon);
}

// Why the service cannot listen on `listen`, from the errno a plain bind
// of it gets.
[[noreturn]] void throw_listen_error(const std::string& listen, int err) {
  if (err == EADDRINUSE)
    throw Error(str_cat("checkpoint service: port in use: another process listens on ", listen,
                        "; stop it or choose another --listen"));
  if (err == EADDRNOTAVAIL)
    throw Error(str_cat("checkpoint service: cannot listen on ", listen, ": ", host_of(listen),
                        " is not an address of this host; choose another --listen (e.g. 127.0.0.1:7070)"));
  throw Error(str_cat("checkpoint service: cannot listen on ", listen, ": ",
                      err ? std::strerror(err) : "gRPC refused the address", "; choose another --listen"));
}

}  // namespace

bool is_loopback_listen(const std::string& listen) {
  const std::string host = host_of(listen);
  in_addr v4;
  if (::inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;  // 127.0.0.0/8
  return host == "localhost" || host == "::1";
}

std::string read_token_file(const std::string& path) {
  std::string token = read_input_file(path, "token file", 4096);
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' ' || token.back() == '\t'))
    token.pop_back();
  if (token.empty()) throw IoError(str_cat("token file '", path, "' is empty; put a shared secret in it"));
  return token;
}

struct CheckpointService::Impl final : public pb::Checkpoints::Service {
  ServiceOptions opts;
  std::string token;  // "" = no token required (loopback)
  std::string address;
  CheckpointStore store;
  std::unique_ptr<grpc::Server> server;

  using Key = std::pair<std::string, int64_t>;
  std::mutex mu;                                  // the store's directory operations
  std::map<Key, std::set<std::string>> received;  // files this process received whole, per save
  std::set<std::tuple<std::string, int64_t, std::string>> uploading;
  std::map<Key, pb::SaveStatus> outcomes;         // of saves that ended here, the newest kOutcomes
  std::deque<Key> outcome_order;                  // oldest first

  explicit Impl(const ServiceOptions& o) : opts(o), store(o.dir, /*create=*/true) {}

  RpcStatus authorize(const ServerContext* ctx) const {
    if (token.empty()) return RpcStatus::OK;
    // The client adds the fix: the setting that gives the token where it runs.
    const auto& md = ctx->client_metadata();
    const auto it = md.find(kTokenMetadataKey);
    if (it == md.end())
      return RpcStatus(StatusCode::UNAUTHENTICATED, "this checkpoint service requires a token; the call carried none");
    if (!same_token(token, std::string(it->second.data(), it->second.size())))
      return RpcStatus(StatusCode::UNAUTHENTICATED, "the call's token is not this checkpoint service's");
    return RpcStatus::OK;
  }

  RpcStatus Hello(ServerContext* ctx, const pb::HelloRequest* req, pb::HelloReply* reply) override {
    if (RpcStatus s = authorize(ctx); !s.ok()) return s;
    reply->set_protocol(kCheckpointProtocol);
    reply->set_dir(store.dir());
    reply->set_max_chunk_bytes(kCheckpointChunkBytes);
    if (req->protocol() != kCheckpointProtocol)
      return RpcStatus(StatusCode::FAILED_PRECONDITION,
                    str_cat("protocol ", req->protocol(), " requested, this service speaks ", kCheckpointProtocol,
                            "; use the same lintrain version for the trainer and the service"));
    return RpcStatus::OK;
  }

  RpcStatus PutFile(ServerContext* ctx, grpc::ServerReader<pb::FileChunk>* reader, pb::PutFileReply* reply) override {
    if (RpcStatus s = authorize(ctx); !s.ok()) return s;
    pb::FileChunk chunk;
    if (!reader->Read(&chunk)) return invalid("PutFile: the stream is empty");
    if (!chunk.has_header()) return invalid("PutFile: the first message must carry the header");
    const pb::FileHeader h = chunk.header();
    if (RpcStatus s = check_key(h.save()); !s.ok()) return s;
    if (RpcStatus s = check_rank(h.rank(), h.world_size()); !s.ok()) return s;
    if (RpcStatus s = check_file_name(h.name()); !s.ok()) return s;
    if (h.bytes() > opts.max_file_bytes)
      return invalid(str_cat("file '", h.name(), "' announces ", h.bytes(), " bytes, above this service's limit of ",
                             opts.max_file_bytes));
    const Key key{h.save().job(), h.save().step()};
    const auto upload = std::make_tuple(key.first, key.second, h.name());
    {
      std::lock_guard<std::mutex> lock(mu);
      if (RpcStatus s = check_replace(key, h.has_resumed_from() ? &h.resumed_from() : nullptr); !s.ok()) return s;
      if (!uploading.insert(upload).second)
        return RpcStatus(StatusCode::ALREADY_EXISTS,
                      str_cat("file '", h.name(), "' of step ", key.second, " is already being uploaded"));
      try {
        store.begin_save(key.first, key.second, opts.stale_after_s);
      } catch (const IoError& e) {
        uploading.erase(upload);
        return RpcStatus(StatusCode::ALREADY_EXISTS, e.what());
      }
      received[key].erase(h.name());
    }
    struct Done {
      Impl* self;
      std::tuple<std::string, int64_t, std::string> upload;
      ~Done() {
        std::lock_guard<std::mutex> lock(self->mu);
        self->uploading.erase(upload);
      }
    } done{this, upload};
    try {
      auto part = store.open_part(key.first, key.second, h.name(), h.bytes(), /*direct_io=*/true);
      uint64_t pieces = 0;
      do {
        if (pieces > 0 && chunk.has_header()) return invalid("PutFile: only the first message may carry a header");
        if (chunk.data().size() > kCheckpointChunkBytes)
          return invalid(str_cat("PutFile: a chunk of ", chunk.data().size(), " bytes, above the limit of ",
                                 kCheckpointChunkBytes));
        part->write(chunk.data().data(), chunk.data().size());
        if (++pieces == 1) failpoint_kill("service.mid-file", key.second);
      } while (reader->Read(&chunk));
      const uint64_t want = h.xxh3_64();
      const FileRecord rec = part->finish(&want);
      reply->set_bytes(rec.bytes);
      reply->set_xxh3_64(rec.xxh3);
      std::lock_guard<std::mutex> lock(mu);
      received[key].insert(h.name());
    } catch (const IoError& e) {
      return RpcStatus(StatusCode::DATA_LOSS, e.what());
    } catch (const Error& e) {
      return invalid(e.what());
    }
    return RpcStatus::OK;
  }

  RpcStatus Arrive(ServerContext* ctx, const pb::ArriveRequest* req, pb::SaveStatus* reply) override {
    if (RpcStatus s = authorize(ctx); !s.ok()) return s;
    if (RpcStatus s = check_key(req->save()); !s.ok()) return s;
    if (RpcStatus s = check_rank(req->rank(), req->world_size()); !s.ok()) return s;
    if (req->data() < 1 || req->sequence() < 1 ||
        static_cast<int64_t>(req->data()) * req->sequence() != req->world_size())
      return invalid("data x sequence must equal world_size");
    if (req->keep() < 0) return invalid("keep must be >= 0");
    if (static_cast<size_t>(req->files_size()) > kMaxFilesPerRank) return invalid("too many files for one rank");
    Arrival a;
    a.job = req->save().job();
    a.step = req->save().step();
    a.world_size = req->world_size();
    a.rank = req->rank();
    a.data = req->data();
    a.sequence = req->sequence();
    a.replica_xxh3 = req->replica_xxh3_64();
    a.keep = req->keep();
    for (const pb::FileEntry& f : req->files()) {
      if (RpcStatus s = check_file_name(f.name()); !s.ok()) return s;
      a.files.push_back(FileRecord{f.name(), f.bytes(), f.xxh3_64()});
    }
    const Key key{a.job, a.step};
    std::lock_guard<std::mutex> lock(mu);
    // A rank that retries its arrival after the save was published (its
    // first answer was lost) hears that it is published.
    if (!store.pending(a.job, a.step) && published_here(key, reply)) return RpcStatus::OK;
    if (RpcStatus s = check_replace(key, req->has_resumed_from() ? &req->resumed_from() : nullptr); !s.ok()) {
      store.abandon(a.job, a.step);
      received.erase(key);
      return s;
    }
    try {
      store.begin_save(a.job, a.step, opts.stale_after_s);
      store.record_arrival(a);
      failpoint_kill("service.after-arrival", a.step);
      if (store.try_publish(a.job, a.step, received[key])) {
        reply->set_state(pb::SaveStatus::PUBLISHED);
        reply->set_where(store.path_of(a.step));
        remember(key, *reply);
        received.erase(key);
      } else {
        reply->set_state(pb::SaveStatus::PENDING);
        reply->set_arrived(static_cast<int>(store.arrivals(a.job, a.step).size()));
      }
    } catch (const IoError& e) {
      if (!store.pending(a.job, a.step)) return RpcStatus(StatusCode::ALREADY_EXISTS, e.what());
      fail(key, e.what(), false, reply);
    } catch (const ReplicaMismatchError& e) {
      fail(key, e.what(), true, reply);
    } catch (const Error& e) {
      fail(key, e.what(), false, reply);
    }
    return RpcStatus::OK;
  }

  // A save that cannot be published: its files go, its ranks learn why.
  void fail(const Key& key, const std::string& why, bool replicas_differ, pb::SaveStatus* reply) {
    store.abandon(key.first, key.second);
    received.erase(key);
    reply->set_state(pb::SaveStatus::FAILED);
    reply->set_error(why);
    reply->set_replicas_differ(replicas_differ);
    remember(key, *reply);
  }

  // Keeps the outcome of a save for Status, forgetting the oldest beyond
  // kOutcomes; also forgets files received for saves no longer pending
  // (abandoned by their job, or removed as stale). Under mu.
  void remember(const Key& key, const pb::SaveStatus& status) {
    constexpr size_t kOutcomes = 1000;
    if (outcomes.insert_or_assign(key, status).second) outcome_order.push_back(key);
    while (outcome_order.size() > kOutcomes) {
      outcomes.erase(outcome_order.front());
      outcome_order.pop_front();
    }
    if (received.size() > kOutcomes)
      for (auto it = received.begin(); it != received.end();)
        it = store.pending(it->first.first, it->first.second) ? std::next(it) : received.erase(it);
  }

  // Another job's complete checkpoint of the step may only be replaced by a
  // job that resumed from this directory at or before that step (the run went
  // back: the new history replaces the old one). A job that started fresh, or
  // from a checkpoint elsewhere, is another run: replacing would hand its
  // weights to the first run's next resume. Under mu.
  RpcStatus check_replace(const Key& key, const pb::ResumedFrom* resumed_from) const {
    const std::string owner = store.published_job(key.second);
    if (owner.empty() || owner == key.first || (resumed_from && resumed_from->step() <= key.second))
      return RpcStatus::OK;
    return RpcStatus(
        StatusCode::ALREADY_EXISTS,
        str_cat("step ", key.second, " already holds job ", owner, "'s complete checkpoint (",
                store.path_of(key.second), "), and job ", key.first, ", which did not resume from this directory "
                "(it started fresh or from a checkpoint elsewhere), would replace it with another run's weights: "
                "give each run its own directory (one `lintrain ckpt serve --dir DIR` per run), or resume from "
                "that checkpoint (resume: auto) to continue its run"));
  }

  // Whether `key` was published (by this process, or before it started:
  // the folder's manifest names the job); fills `reply` when it was. Under mu.
  bool published_here(const Key& key, pb::SaveStatus* reply) {
    const auto it = outcomes.find(key);
    if (it != outcomes.end() && it->second.state() == pb::SaveStatus::PUBLISHED) {
      *reply = it->second;
      return true;
    }
    if (store.published_job(key.second) != key.first) return false;
    reply->set_state(pb::SaveStatus::PUBLISHED);
    reply->set_where(store.path_of(key.second));
    return true;
  }

  RpcStatus status_of(const pb::StatusRequest* req, pb::SaveStatus* reply) {
    const Key key{req->save().job(), req->save().step()};
    std::lock_guard<std::mutex> lock(mu);
    const auto it = outcomes.find(key);
    if (it != outcomes.end()) {
      *reply = it->second;
      return RpcStatus::OK;
    }
    if (store.pending(key.first, key.second)) {
      reply->set_state(pb::SaveStatus::PENDING);
      try {
        reply->set_arrived(static_cast<int>(store.arrivals(key.first, key.second).size()));
      } catch (const Error&) {
        // A damaged arrival record: the count stays 0; publishing will say what is wrong.
      }
      return RpcStatus::OK;
    }
    if (!published_here(key, reply)) reply->set_state(pb::SaveStatus::UNKNOWN);
    return RpcStatus::OK;
  }

  RpcStatus Status(ServerContext* ctx, const pb::StatusRequest* req, pb::SaveStatus* reply) override {
    if (RpcStatus s = authorize(ctx); !s.ok()) return s;
    if (RpcStatus s = check_key(req->save()); !s.ok()) return s;
    return status_of(req, reply);
  }

  RpcStatus List(ServerContext* ctx, const pb::ListRequest*, pb::ListReply* reply) override {
    if (RpcStatus s = authorize(ctx); !s.ok()) return s;
    std::lock_guard<std::mutex> lock(mu);
    for (const CheckpointInfo& c : store.list()) {
      pb::CheckpointEntry* e = reply->add_checkpoints();
      e->set_step(c.step);
      e->set_complete(c.complete);
      e->set_problem(c.problem);
      e->set_bytes(c.bytes);
      e->set_created_unix(c.created_unix);
      e->set_world_size(c.world_size);
      e->set_data(c.data);
      e->set_sequence(c.sequence);
    }
    reply->set_latest(store.latest());
    return RpcStatus::OK;
  }

  RpcStatus GetManifest(ServerContext* ctx, const pb::GetManifestRequest* req,
                           pb::GetManifestReply* reply) override {
    if (RpcStatus s = authorize(ctx); !s.ok()) return s;
    if (req->step() < 0 || req->step() > kMaxStep) return invalid("step must be in [0, 2^53]");
    try {
      reply->set_manifest_json(read_small_file(store.path_of(req->step()) + "/" + kManifestName));
    } catch (const IoError& e) {
      return RpcStatus(StatusCode::NOT_FOUND, e.what());
    }
    return RpcStatus::OK;
  }

  RpcStatus ReadFile(ServerContext* ctx, const pb::ReadFileRequest* req,
                        grpc::ServerWriter<pb::FileData>* writer) override {
    if (RpcStatus s = authorize(ctx); !s.ok()) return s;
    if (req->step() < 0 || req->step() > kMaxStep) return invalid("step must be in [0, 2^53]");
    if (RpcStatus s = check_file_name(req->name()); !s.ok()) return s;
    const std::string folder = store.path_of(req->step());
    ReadLock hold(folder);  // retention leaves it alone while it streams
    try {
      const std::string mpath = folder + "/" + kManifestName;
      if (!parse_manifest(read_small_file(mpath), mpath).file(req->name()))
        return RpcStatus(StatusCode::NOT_FOUND, str_cat(folder, " lists no file '", req->name(), "'"));
      const MappedFile f = MappedFile::open(folder + "/" + req->name());
      pb::FileData out;
      for (size_t off = 0; off < f.size(); off += kCheckpointChunkBytes) {
        const size_t n = std::min(kCheckpointChunkBytes, f.size() - off);
        out.set_data(f.data() + off, n);
        if (!writer->Write(out)) return RpcStatus(StatusCode::CANCELLED, "the reader went away");
      }
    } catch (const IoError& e) {
      return RpcStatus(StatusCode::NOT_FOUND, e.what());
    }
    return RpcStatus::OK;
  }
};

CheckpointService::CheckpointService(const ServiceOptions& opts) : impl_(std::make_unique<Impl>(opts)) {
  Impl& s = *impl_;
  // HOST:PORT with a port gRPC can bind, checked here so the error is ours.
  const size_t colon = opts.listen.rfind(':');
  const std::string port_text = colon == std::string::npos ? "" : opts.listen.substr(colon + 1);
  if (port_text.empty() || port_text.size() > 5 || port_text.find_first_not_of("0123456789") != std::string::npos ||
      std::stoi(port_text) > 65535 || host_of(opts.listen).empty())
    throw ConfigError(str_cat("--listen '", opts.listen, "' is not HOST:PORT with a port 0..65535 (e.g. ",
                              "127.0.0.1:7070)"));
  if (!opts.token_file.empty()) s.token = read_token_file(opts.token_file);
  else if (!is_loopback_listen(opts.listen))
    throw ConfigError(str_cat("--listen ", opts.listen, " is not a loopback address: a service reachable from other "
                              "hosts needs --token-file FILE (a shared secret the trainers give through "
                              "checkpoint.token_file)"));
  s.store.lock_for_writing(str_cat("the checkpoint service (pid ", ::getpid(), " on ", host_name(), ", ",
                                   opts.listen, ")"),
                         "--dir");
  // Files that arrived whole stay, so a save in progress survives a restart.
  s.store.remove_stale(-1);
  // Asked first, so that a port in use gets our one line, not gRPC's log.
  if (const int err = bind_errno(opts.listen)) throw_listen_error(opts.listen, err);
  int port = 0;
  grpc::ServerBuilder builder;
  // gRPC sets SO_REUSEPORT by default: a second service on this port would
  // bind too, and the kernel would spread the trainers' connections over both
  // (their checkpoints landing in two directories).
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(opts.listen, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&s);
  builder.SetMaxReceiveMessageSize(static_cast<int>(kCheckpointChunkBytes + (64 << 10)));
  builder.SetMaxSendMessageSize(static_cast<int>(kCheckpointChunkBytes + (64 << 10)));
  s.server = builder.BuildAndStart();
  if (!s.server || port == 0) throw_listen_error(opts.listen, bind_errno(opts.listen));
  s.address = host_of(opts.listen);
  if (s.address.find(':') != std::string::npos) s.address = "[" + s.address + "]";
  s.address += str_cat(":", port);
}

CheckpointService::~CheckpointService() { shutdown(2); }

const std::string& CheckpointService::address() const { return impl_->address; }
const std::string& CheckpointService::dir() const { return impl_->store.dir(); }

void CheckpointService::shutdown(double grace_s) {
  if (!impl_->server) return;
  impl_->server->Shutdown(std::chrono::system_clock::now() +
                          std::chrono::milliseconds(static_cast<int64_t>(grace_s * 1000)));
  impl_->server->Wait();
  impl_->server.reset();
}

}  // namespace lintrain
