#include "runtime/checkpoint/service/client.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <random>

#include "runtime/checkpoint/checksum.h"
#include "runtime/checkpoint/service/checkpoint.grpc.pb.h"
#include "runtime/checkpoint/service/server.h"
#include "runtime/checkpoint/store.h"
#include "runtime/error.h"

namespace lintrain {
namespace {

namespace pb = ::lintrain::ckpt::v1;
using Clock = std::chrono::system_clock;

std::shared_ptr<grpc::Channel> make_channel(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(static_cast<int>(kCheckpointChunkBytes + (64 << 10)));
  args.SetMaxSendMessageSize(static_cast<int>(kCheckpointChunkBytes + (64 << 10)));
  // Reconnect quickly once a restarted service is back.
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

// Statuses that a later attempt can cure: the service is restarting or the
// connection broke (a file damaged on the way, DATA_LOSS, is sent again).
bool retryable(grpc::StatusCode c) {
  return c == grpc::StatusCode::UNAVAILABLE || c == grpc::StatusCode::DEADLINE_EXCEEDED ||
         c == grpc::StatusCode::ABORTED || c == grpc::StatusCode::CANCELLED || c == grpc::StatusCode::UNKNOWN ||
         c == grpc::StatusCode::DATA_LOSS;
}

// The status as "CODE: message"; a refused token also names the fix where
// this client runs (ep.token_setting).
std::string status_text(const grpc::Status& s, const ServiceEndpoint& ep) {
  static const char* const kNames[] = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
                                       "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
                                       "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
                                       "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"};
  const int c = static_cast<int>(s.error_code());
  std::string text = str_cat(c >= 0 && c <= 16 ? kNames[c] : "?", ": ", s.error_message());
  if (s.error_code() == grpc::StatusCode::UNAUTHENTICATED)
    text += ep.token.empty()
                ? str_cat("; give the file holding the service's token with ", ep.token_setting)
                : str_cat("; the file ", ep.token_setting, " names must hold the token of the service's --token-file");
  return text;
}

class Connection {
 public:
  explicit Connection(ServiceEndpoint ep) : ep_(std::move(ep)), stub_(pb::Checkpoints::NewStub(make_channel(ep_.address))) {}
  const ServiceEndpoint& endpoint() const { return ep_; }
  pb::Checkpoints::Stub& stub() { return *stub_; }
  // A call context with the token and a deadline `seconds` from now.
  std::unique_ptr<grpc::ClientContext> context(double seconds) const {
    auto ctx = std::make_unique<grpc::ClientContext>();
    if (!ep_.token.empty()) ctx->AddMetadata(kTokenMetadataKey, ep_.token);
    ctx->set_deadline(Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(std::max(0.001, seconds) * 1000)));
    return ctx;
  }
  std::string describe() const { return "checkpoint service " + ep_.address; }

 private:
  ServiceEndpoint ep_;
  std::unique_ptr<pb::Checkpoints::Stub> stub_;
};

class ServiceTarget : public CheckpointTarget {
 public:
  ServiceTarget(const ServiceEndpoint& ep, int rank, int world_size, std::function<void(const std::string&)> notice)
      : conn_(ep), rank_(rank), world_size_(world_size), notice_(std::move(notice)), jitter_(std::random_device{}()) {}
  std::string describe() const override { return conn_.describe(); }

  FileRecord put_file(const SaveId& id, const StagedFile& file, SaveControl& ctl) override {
    const FileRecord rec{file.name, file.size, xxh3_of(file.data, file.size)};
    retry(ctl, "sending " + file.name, [&]() -> grpc::Status {
      // 30 s plus the file at 10 MB/s, within what is left of the save's time.
      auto ctx = conn_.context(std::min(ctl.remaining_s(), 30 + static_cast<double>(rec.bytes) / 1e7));
      const SaveControl::Waiting sending(ctl, [c = ctx.get()] { c->TryCancel(); }, /*passive=*/false);
      pb::PutFileReply reply;
      auto writer = conn_.stub().PutFile(ctx.get(), &reply);
      pb::FileChunk chunk;
      pb::FileHeader* h = chunk.mutable_header();
      h->mutable_save()->set_job(id.job);
      h->mutable_save()->set_step(id.step);
      h->set_rank(rank_);
      h->set_world_size(world_size_);
      h->set_name(file.name);
      h->set_bytes(rec.bytes);
      h->set_xxh3_64(rec.xxh3);
      if (id.resumed_from >= 0) h->mutable_resumed_from()->set_step(id.resumed_from);
      bool ok = true;
      size_t at = 0;
      do {  // at least one message: the header, with the first piece
        ctl.check("sending " + file.name);
        const size_t n = std::min(kCheckpointChunkBytes, file.size - at);
        chunk.set_data(file.data + at, n);
        ok = writer->Write(chunk);
        chunk.clear_header();
        at += n;
      } while (ok && at < file.size);
      if (ok) writer->WritesDone();
      return writer->Finish();
    });
    return rec;
  }

  void arrive(const Arrival& a, SaveControl& ctl) override {
    pb::ArriveRequest req;
    req.mutable_save()->set_job(a.job);
    req.mutable_save()->set_step(a.step);
    req.set_rank(a.rank);
    req.set_world_size(a.world_size);
    req.set_data(a.data);
    req.set_sequence(a.sequence);
    req.set_replica_xxh3_64(a.replica_xxh3);
    req.set_keep(a.keep);
    if (a.resumed_from >= 0) req.mutable_resumed_from()->set_step(a.resumed_from);
    for (const FileRecord& f : a.files) {
      pb::FileEntry* e = req.add_files();
      e->set_name(f.name);
      e->set_bytes(f.bytes);
      e->set_xxh3_64(f.xxh3);
    }
    retry(ctl, "recording the arrival", [&] {
      auto ctx = conn_.context(std::min(ctl.remaining_s(), 30.0));
      const SaveControl::Waiting on_the_service(ctl, [c = ctx.get()] { c->TryCancel(); });
      return conn_.stub().Arrive(ctx.get(), req, &last_);
    });
    throw_if_failed(last_);
  }

  std::string wait_published(const SaveId& id, SaveControl& ctl) override {
    double pause = 0.002;
    while (last_.state() != pb::SaveStatus::PUBLISHED) {
      if (!ctl.wait(pause)) ctl.check(str_cat("waiting for the other ranks' shares at ", conn_.describe()));
      pause = std::min(pause * 2, 0.25);
      pb::StatusRequest req;
      req.mutable_save()->set_job(id.job);
      req.mutable_save()->set_step(id.step);
      retry(ctl, "asking for the save's status", [&] {
        auto ctx = conn_.context(std::min(ctl.remaining_s(), 30.0));
        const SaveControl::Waiting on_the_service(ctl, [c = ctx.get()] { c->TryCancel(); });
        return conn_.stub().Status(ctx.get(), req, &last_);
      });
      throw_if_failed(last_);
      if (last_.state() == pb::SaveStatus::UNKNOWN)
        throw Error(str_cat(conn_.describe(), " no longer knows the save of step ", id.step,
                            " (it was restarted and had removed it as stale)"));
    }
    return last_.where();
  }

  void abandon(const SaveId&) noexcept override {
    // The service removes a pending save once it has been idle for its
    // --stale-after time; nothing to undo from here.
    last_.Clear();
  }

 private:
  static void throw_if_failed(const pb::SaveStatus& s) {
    if (s.state() != pb::SaveStatus::FAILED) return;
    if (s.replicas_differ()) throw ReplicaMismatchError(s.error());
    throw Error(s.error());
  }

  // Runs `call` until it succeeds; retries what a later attempt can cure,
  // waiting with backoff (cancellable by the next save); throws otherwise.
  template <typename Call>
  void retry(SaveControl& ctl, const std::string& doing, Call&& call) {
    double pause = 0.1;
    for (int attempt = 0;; ++attempt) {
      ctl.check(str_cat(doing, " to ", conn_.describe()));
      const grpc::Status s = call();
      if (s.ok()) {
        if (away_ && notice_) notice_(str_cat(conn_.describe(), " answers again"));
        away_ = false;
        return;
      }
      if (!retryable(s.error_code()))
        throw Error(str_cat(conn_.describe(), " refused ", doing, ": ", status_text(s, conn_.endpoint())));
      if (!away_ && notice_)
        notice_(str_cat(conn_.describe(), " did not take ", doing, " (", status_text(s, conn_.endpoint()),
                        "); retrying while training goes on"));
      away_ = true;
      std::uniform_real_distribution<double> spread(0.8, 1.2);
      if (!ctl.wait(pause * spread(jitter_)))
        ctl.check(str_cat(doing, " to ", conn_.describe(), " (last answer ", status_text(s, conn_.endpoint()), ")"));
      pause = std::min(pause * 2, 5.0);
    }
  }

  Connection conn_;
  int rank_;
  int world_size_;
  std::function<void(const std::string&)> notice_;
  std::mt19937_64 jitter_;
  pb::SaveStatus last_;
  bool away_ = false;
};

class ServiceSource : public CheckpointSource {
 public:
  ServiceSource(const ServiceEndpoint& ep, double timeout_s) : conn_(ep), timeout_s_(timeout_s) {}
  std::string describe() const override { return conn_.describe(); }

  std::vector<CheckpointInfo> list() override {
    pb::ListReply reply;
    call("listing checkpoints", [&](grpc::ClientContext* ctx) { return conn_.stub().List(ctx, {}, &reply); });
    std::vector<CheckpointInfo> out;
    for (const pb::CheckpointEntry& e : reply.checkpoints()) {
      CheckpointInfo c;
      c.step = e.step();
      c.path = where(e.step());
      c.complete = e.complete();
      c.problem = e.problem();
      c.bytes = e.bytes();
      c.created_unix = e.created_unix();
      c.world_size = e.world_size();
      c.data = e.data();
      c.sequence = e.sequence();
      out.push_back(std::move(c));
    }
    return out;
  }

  std::string where(int64_t step) const override { return conn_.endpoint().address + ":" + step_dir_name(step); }

  std::string read_manifest(int64_t step) override {
    pb::GetManifestRequest req;
    req.set_step(step);
    pb::GetManifestReply reply;
    call("reading a manifest", [&](grpc::ClientContext* ctx) { return conn_.stub().GetManifest(ctx, req, &reply); });
    return reply.manifest_json();
  }

  SafeTensorFile open_verified(int64_t step, const FileRecord& record) override {
    const std::string name = where(step) + "/" + record.name;
    std::vector<uint8_t> bytes;
    call("reading " + name, [&](grpc::ClientContext* ctx) {
      bytes.clear();
      pb::ReadFileRequest req;
      req.set_step(step);
      req.set_name(record.name);
      auto reader = conn_.stub().ReadFile(ctx, req);
      pb::FileData chunk;
      while (reader->Read(&chunk)) {
        if (bytes.size() + chunk.data().size() > record.bytes) {
          ctx->TryCancel();
          break;
        }
        bytes.insert(bytes.end(), chunk.data().begin(), chunk.data().end());
      }
      return reader->Finish();
    });
    if (bytes.size() != record.bytes)
      throw IoError(str_cat("[checkpoint] ", name, " arrived with ", bytes.size(), " bytes, the manifest says ",
                            record.bytes));
    const uint64_t h = xxh3_of(bytes.data(), bytes.size());
    if (h != record.xxh3)
      throw IoError(str_cat("[checkpoint] ", name, " has checksum ", xxh3_hex(h), ", the manifest says ",
                            xxh3_hex(record.xxh3), " (the file is damaged)"));
    return safetensors_from_bytes(name, std::move(bytes));
  }

  std::shared_ptr<void> hold(int64_t) override { return nullptr; }

 private:
  template <typename Call>
  void call(const std::string& doing, Call&& fn) {
    auto ctx = conn_.context(timeout_s_);
    ctx->set_wait_for_ready(true);  // ride out a service that is just starting
    const grpc::Status s = fn(ctx.get());
    if (s.error_code() == grpc::StatusCode::NOT_FOUND) throw IoError(str_cat(conn_.describe(), ": ", s.error_message()));
    if (!s.ok())
      throw Error(str_cat(conn_.describe(), " failed ", doing, ": ", status_text(s, conn_.endpoint())));
  }

  Connection conn_;
  double timeout_s_;
};

}  // namespace

ServiceEndpoint service_endpoint(const std::string& address, const std::string& token_file) {
  ServiceEndpoint ep;
  ep.address = address;
  if (!token_file.empty()) ep.token = read_token_file(token_file);
  return ep;
}

std::string service_hello(const ServiceEndpoint& ep, double timeout_s) {
  Connection conn(ep);
  auto ctx = conn.context(timeout_s);
  ctx->set_wait_for_ready(true);
  pb::HelloRequest req;
  req.set_protocol(kCheckpointProtocol);
  pb::HelloReply reply;
  const grpc::Status s = conn.stub().Hello(ctx.get(), req, &reply);
  const grpc::StatusCode c = s.error_code();
  if (c == grpc::StatusCode::UNAUTHENTICATED || c == grpc::StatusCode::FAILED_PRECONDITION ||
      c == grpc::StatusCode::PERMISSION_DENIED)
    throw ConfigError(str_cat(conn.describe(), " refused this run: ", status_text(s, ep)));
  if (!s.ok()) throw Error(str_cat(conn.describe(), " is not reachable: ", status_text(s, ep)));
  return reply.dir();
}

std::unique_ptr<CheckpointTarget> service_target(const ServiceEndpoint& ep, int rank, int world_size,
                                                 std::function<void(const std::string&)> notice) {
  return std::make_unique<ServiceTarget>(ep, rank, world_size, std::move(notice));
}

std::unique_ptr<CheckpointSource> service_source(const ServiceEndpoint& ep, double timeout_s) {
  return std::make_unique<ServiceSource>(ep, timeout_s);
}

}  // namespace lintrain
