// The checkpoint service (runtime/checkpoint/service/) in process, over a
// fresh directory, driven by the real client (CheckpointSaver through
// service_target, service_source for reading back) and by a raw stub for the
// requests a well-behaved client never sends. What a save publishes must be
// the same as what a file-mode save publishes: it verifies from the
// directory and restores every byte.
#include <gtest/gtest.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "runtime/checkpoint/checksum.h"
#include "runtime/checkpoint/manifest.h"
#include "runtime/checkpoint/reader.h"
#include "runtime/checkpoint/run_state.h"
#include "runtime/checkpoint/saver.h"
#include "runtime/checkpoint/service/checkpoint.grpc.pb.h"
#include "runtime/checkpoint/service/client.h"
#include "runtime/checkpoint/service/server.h"
#include "runtime/checkpoint/service/tcp_probe.h"
#include "runtime/checkpoint/store.h"
#include "runtime/error.h"
#include "temp_dir.h"

using namespace lintrain;
namespace fs = std::filesystem;
namespace pb = lintrain::ckpt::v1;

namespace {

using test::TempDir;
using Code = grpc::StatusCode;

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// One rank's copy of a small run. Every value is distinct and non-zero, so a
// restore into zeros that skipped or shifted an entry shows.
struct Replica {
  std::vector<float> embed = std::vector<float>(4 * 3);  // model (4, 3)
  std::vector<float> head = std::vector<float>(2 * 3);   // model (2, 3)
  std::vector<float> moment = std::vector<float>(5);     // trainer (5)
  int64_t step = 1234567890123;                          // trainer scalar, above 2^32
  Replica() {
    for (size_t i = 0; i < embed.size(); ++i) embed[i] = 0.25f * static_cast<float>(i) + 0.5f;
    for (size_t i = 0; i < head.size(); ++i) head[i] = -1.5f * static_cast<float>(i + 1);
    for (size_t i = 0; i < moment.size(); ++i) moment[i] = 1e-3f * static_cast<float>(i + 1);
  }
  // Borrows this object's memory: build it where it is used.
  RunState state() {
    RunState s;
    s.add("model", "model.embed_tokens.weight", DType::F32, {4, 3}, embed.data());
    s.add("model", "lm_head.weight", DType::F32, {2, 3}, head.data());
    s.add_scalar("trainer", "step", &step);
    s.add("trainer", "optimizer.exp_avg", DType::F32, {5}, moment.data());
    return s;
  }
  void zero() {
    for (std::vector<float>* v : {&embed, &head, &moment}) std::fill(v->begin(), v->end(), 0.0f);
    step = 0;
  }
  // Byte equality (not float ==): a restore must reproduce the bits.
  bool same_bytes(const Replica& o) const {
    auto same = [](const std::vector<float>& x, const std::vector<float>& y) {
      return std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0;
    };
    return same(embed, o.embed) && same(head, o.head) && same(moment, o.moment) && step == o.step;
  }
};

// ---- raw requests ---------------------------------------------------------------

std::unique_ptr<pb::Checkpoints::Stub> raw_stub(const std::string& address) {
  return pb::Checkpoints::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
}

// A refusal comes back at once; the 10 s deadline only bounds a hang.
void set_deadline(grpc::ClientContext& ctx) {
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
}

pb::FileHeader header(const std::string& job, int64_t step, const std::string& name, const std::string& body) {
  pb::FileHeader h;
  h.mutable_save()->set_job(job);
  h.mutable_save()->set_step(step);
  h.set_rank(0);
  h.set_world_size(1);
  h.set_name(name);
  h.set_bytes(body.size());
  h.set_xxh3_64(xxh3_of(body.data(), body.size()));
  return h;
}

// One PutFile: `pieces` in order, the header (when given) with the first.
grpc::Status put(pb::Checkpoints::Stub& stub, const pb::FileHeader* h, const std::vector<std::string>& pieces) {
  grpc::ClientContext ctx;
  set_deadline(ctx);
  pb::PutFileReply reply;
  auto writer = stub.PutFile(&ctx, &reply);
  for (size_t i = 0; i < pieces.size(); ++i) {
    pb::FileChunk chunk;
    if (i == 0 && h) *chunk.mutable_header() = *h;
    chunk.set_data(pieces[i]);
    if (!writer->Write(chunk)) break;
  }
  writer->WritesDone();
  return writer->Finish();
}

pb::ArriveRequest arrival(const std::string& job, int64_t step, int rank, int world,
                          const std::vector<FileRecord>& files = {}) {
  pb::ArriveRequest req;
  req.mutable_save()->set_job(job);
  req.mutable_save()->set_step(step);
  req.set_rank(rank);
  req.set_world_size(world);
  req.set_data(world);
  req.set_sequence(1);
  for (const FileRecord& f : files) {
    pb::FileEntry* e = req.add_files();
    e->set_name(f.name);
    e->set_bytes(f.bytes);
    e->set_xxh3_64(f.xxh3);
  }
  return req;
}

grpc::Status arrive(pb::Checkpoints::Stub& stub, const pb::ArriveRequest& req, pb::SaveStatus* reply) {
  grpc::ClientContext ctx;
  set_deadline(ctx);
  return stub.Arrive(&ctx, req, reply);
}

pb::SaveStatus status_of(pb::Checkpoints::Stub& stub, const std::string& job, int64_t step) {
  grpc::ClientContext ctx;
  set_deadline(ctx);
  pb::StatusRequest req;
  req.mutable_save()->set_job(job);
  req.mutable_save()->set_step(step);
  pb::SaveStatus reply;
  EXPECT_TRUE(stub.Status(&ctx, req, &reply).ok());
  return reply;
}

// `bytes` sent as the whole request message of `method`, bypassing protobuf.
grpc::Status raw_unary(const std::string& address, const std::string& method, const std::string& bytes) {
  grpc::GenericStub stub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  set_deadline(ctx);
  grpc::Slice slice(bytes.data(), bytes.size());
  grpc::ByteBuffer request(&slice, 1), response;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&ctx, method, grpc::StubOptions(), &request, &response,
                 [&](grpc::Status s) { done.set_value(std::move(s)); });
  return done.get_future().get();
}

// ---- the fixture ------------------------------------------------------------------

class ServiceTest : public testing::Test {
 protected:
  TempDir tmp{"ckpt_service"};
  Replica a, b;  // rank 0's and rank 1's copies
  const std::string job = new_job_id();
  std::unique_ptr<CheckpointService> service;

  std::string dir() const { return tmp.file("ckpt"); }
  ServiceEndpoint ep(const std::string& token_file = "") const {
    return service_endpoint(service->address(), token_file);
  }

  std::unique_ptr<CheckpointService> start(const std::string& listen = "127.0.0.1:0",
                                           const std::string& token_file = "") {
    ServiceOptions o;
    o.dir = dir();
    o.listen = listen;
    o.token_file = token_file;
    return std::make_unique<CheckpointService>(o);
  }

  // 10 s: every save here takes well under a second; the limit only turns a
  // hang into a failed report.
  static SaverOptions options(const std::string& job, int rank, int world) {
    SaverOptions o;
    o.job = job;
    o.rank = rank;
    o.world_size = o.data = world;
    o.timeout_s = 10;
    return o;
  }

  // Rank `rank` of `job` (world `world`) saving through the service.
  std::unique_ptr<CheckpointSaver> saver_for(const std::string& job, int rank, int world) const {
    return std::make_unique<CheckpointSaver>(options(job, rank, world), service_target(ep(), rank, world));
  }

  // A synchronous save of `r` at `step` and its one report.
  static SaveReport save(CheckpointSaver& saver, int64_t step, Replica& r) {
    const RunState state = r.state();
    saver.save(step, state, /*wait=*/true);
    std::vector<SaveReport> reports = saver.take_reports();
    EXPECT_EQ(reports.size(), 1u);
    return reports.empty() ? SaveReport{} : reports.back();
  }

  // A rank-0 save to `address` with timeout_s = 1.5, and how long it took.
  double save_with_short_timeout(const std::string& address, SaveReport* r) {
    SaverOptions o = options(job, 0, 1);
    o.timeout_s = 1.5;
    CheckpointSaver saver(o, service_target(service_endpoint(address, ""), 0, 1));
    const auto t0 = std::chrono::steady_clock::now();
    *r = save(saver, 1, a);
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }

  // Entries of the checkpoint directory whose names start with `prefix`.
  std::vector<std::string> entries(const std::string& prefix) const {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir(), ec))
      if (e.path().filename().string().rfind(prefix, 0) == 0) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }

  Manifest manifest(int64_t step) const {
    const std::string path = dir() + "/" + step_dir_name(step) + "/" + kManifestName;
    return parse_manifest(read_small_file(path), path);
  }
};

const auto kNoWarning = [](const std::string& w) { ADD_FAILURE() << "unexpected warning: " << w; };

}  // namespace

// ---- saving and reading back ----------------------------------------------------

TEST_F(ServiceTest, SingleRankSaveIsPublishedVerifiesAndRestoresEveryByte) {
  service = start();
  EXPECT_EQ(service_hello(ep(), 5), service->dir());
  const SaveReport r = save(*saver_for(job, 0, 1), 7, a);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.where, service->dir() + "/step-00000007");
  EXPECT_EQ(entries("step-"), std::vector<std::string>{"step-00000007"});
  EXPECT_TRUE(entries(".pending-").empty());

  // The directory alone verifies it (sizes, checksums, safetensors), with no
  // help from the service.
  const OpenedCheckpoint local = open_checkpoint_path(service->dir(), kNoWarning);
  EXPECT_EQ(local.manifest.step, 7);
  EXPECT_EQ(local.manifest.job, job);
  EXPECT_EQ(local.manifest.files.size(), 2u);  // model + trainer
  ASSERT_EQ(local.manifest.ranks.size(), 1u);

  // Read back through the service into zeros.
  Replica back;
  back.zero();
  ASSERT_FALSE(back.same_bytes(a));
  auto source = service_source(ep(), 5);
  std::optional<OpenedCheckpoint> opened = open_newest(*source, kNoWarning);
  ASSERT_TRUE(opened.has_value());
  EXPECT_EQ(opened->manifest.step, 7);
  RunState into = back.state();
  restore_run_state(*opened, into);
  EXPECT_TRUE(back.same_bytes(a));
}

TEST_F(ServiceTest, TwoRanksPublishOnceWithBothInTheManifest) {
  service = start();
  // Rank 1 first: a non-zero rank's save ends once its arrival is recorded,
  // so rank 0's (which waits for publication) then completes it.
  const SaveReport r1 = save(*saver_for(job, 1, 2), 4, b);
  ASSERT_TRUE(r1.ok) << r1.error;
  EXPECT_TRUE(entries("step-").empty()) << "published with one of two ranks";
  const SaveReport r0 = save(*saver_for(job, 0, 2), 4, a);
  ASSERT_TRUE(r0.ok) << r0.error;
  EXPECT_EQ(r0.where, service->dir() + "/step-00000004");
  EXPECT_EQ(entries("step-"), std::vector<std::string>{"step-00000004"});

  const Manifest m = manifest(4);
  EXPECT_EQ(m.world_size, 2);
  EXPECT_EQ(m.data, 2);
  ASSERT_EQ(m.ranks.size(), 2u);
  EXPECT_EQ(m.ranks[0].rank, 0);
  EXPECT_EQ(m.ranks[1].rank, 1);
  EXPECT_EQ(m.ranks[0].files.size(), 2u);  // rank 0 writes the replicated parts
  EXPECT_TRUE(m.ranks[1].files.empty());   // rank 1 only vouches with its digest
  EXPECT_EQ(m.ranks[0].replica_xxh3, m.ranks[1].replica_xxh3);
}

TEST_F(ServiceTest, DifferingReplicasAreFatalAndNothingIsPublished) {
  service = start();
  b.moment[2] += 1.0f;  // one optimizer value of rank 1 has drifted
  const SaveReport r1 = save(*saver_for(job, 1, 2), 4, b);
  ASSERT_TRUE(r1.ok) << r1.error;  // it cannot know yet
  const SaveReport r0 = save(*saver_for(job, 0, 2), 4, a);
  EXPECT_FALSE(r0.ok);
  EXPECT_TRUE(r0.fatal) << r0.error;
  EXPECT_TRUE(contains(r0.error, "diverged")) << r0.error;
  EXPECT_TRUE(entries("step-").empty());
  EXPECT_TRUE(entries(".pending-").empty()) << "the failed save's files stay behind";
}

// ---- tokens and listen addresses ------------------------------------------------

TEST_F(ServiceTest, TokenIsRequiredWhenConfigured) {
  const std::string token = tmp.write("token", "correct horse battery staple\n");
  const std::string wrong = tmp.write("wrong", "correct horse battery stapler\n");
  service = start("127.0.0.1:0", token);
  for (const std::string& file : {std::string(), wrong}) {
    EXPECT_THROW(service_hello(ep(file), 5), ConfigError) << "token file '" << file << "'";
    CheckpointSaver saver(options(job, 0, 1), service_target(ep(file), 0, 1));
    const SaveReport r = save(saver, 1, a);
    EXPECT_FALSE(r.ok);
    // Refused at once, not retried until the timeout.
    EXPECT_TRUE(contains(r.error, "UNAUTHENTICATED") && contains(r.error, "checkpoint.token_file")) << r.error;
  }
  // The fix named is the setting where the client runs: `ckpt ls` takes a flag.
  ServiceEndpoint cli = ep();
  cli.token_setting = "--token-file FILE";
  try {
    service_source(cli, 5)->list();
    ADD_FAILURE() << "listed without the token";
  } catch (const Error& e) {
    EXPECT_TRUE(contains(e.what(), "with --token-file FILE")) << e.what();
    EXPECT_FALSE(contains(e.what(), "checkpoint.token_file")) << e.what();
  }
  EXPECT_TRUE(entries(".pending-").empty());
  EXPECT_EQ(service_hello(ep(token), 5), service->dir());
  CheckpointSaver saver(options(job, 0, 1), service_target(ep(token), 0, 1));
  const SaveReport r = save(saver, 1, a);
  EXPECT_TRUE(r.ok) << r.error;
  EXPECT_EQ(entries("step-"), std::vector<std::string>{"step-00000001"});
}

// gRPC's SO_REUSEPORT let a second service bind the same port and the
// kernel spread the trainers' connections over both.
TEST_F(ServiceTest, ASecondServiceOnTheSamePortIsRefused) {
  service = start();
  ServiceOptions o;
  o.dir = tmp.file("other");
  o.listen = service->address();
  try {
    CheckpointService second(o);
    ADD_FAILURE() << "a second service listens on " << o.listen;
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "checkpoint service: port in use: another process listens on " + o.listen +
                                         "; stop it or choose another --listen");
  }
  // The first one still answers, and owns every connection.
  EXPECT_EQ(service_hello(ep(), 5), service->dir());
  EXPECT_EQ(probe_port(service->address(), 1), PortState::kListening);
}

TEST_F(ServiceTest, ProbeTellsARefusedPortFromAListeningOne) {
  const std::string address = start()->address();  // a port nothing listens on now
  EXPECT_EQ(probe_port(address, 1), PortState::kRefused);
  EXPECT_EQ(bind_errno(address), 0);
  service = start(address);
  EXPECT_EQ(probe_port(address, 1), PortState::kListening);
  EXPECT_EQ(bind_errno(address), EADDRINUSE);
  std::string host, port;
  ASSERT_TRUE(split_host_port("[::1]:7070", &host, &port));
  EXPECT_EQ(host + " " + port, "::1 7070");
  EXPECT_FALSE(split_host_port("no-port", &host, &port));
}

TEST_F(ServiceTest, NonLoopbackListenNeedsATokenFile) {
  EXPECT_THROW(start("0.0.0.0:0"), ConfigError);
  EXPECT_TRUE(is_loopback_listen("127.0.0.1:1"));
  EXPECT_TRUE(is_loopback_listen("localhost:1"));
  EXPECT_TRUE(is_loopback_listen("[::1]:1"));
  EXPECT_FALSE(is_loopback_listen("0.0.0.0:1"));
  EXPECT_FALSE(is_loopback_listen("10.0.0.1:1"));
}

// ---- hostile requests -------------------------------------------------------------

TEST_F(ServiceTest, HostileRequestsAreRefusedAndTheServiceSurvives) {
  service = start();
  auto stub = raw_stub(service->address());
  const std::string body = "8 bytes!";

  // Names that would leave the save's folder, or are not parts.
  for (const char* name : {"../evil.safetensors", "a/b.safetensors", "x.bin", ""}) {
    const pb::FileHeader h = header(job, 1, name, body);
    EXPECT_EQ(put(*stub, &h, {body}).error_code(), Code::INVALID_ARGUMENT) << "'" << name << "'";
  }
  for (const auto& e : fs::recursive_directory_iterator(tmp.str()))
    EXPECT_NE(e.path().filename().string(), "evil.safetensors") << e.path();
  EXPECT_FALSE(fs::exists(fs::path(tmp.str()).parent_path() / "evil.safetensors"));
  EXPECT_FALSE(fs::exists(fs::path(tmp.str()).parent_path() / "a"));

  // Job ids that are not 16 lowercase hex digits, a negative step.
  for (const std::string& bad_job : {std::string("ABCDEF0123456789"), std::string("0123"), std::string()}) {
    const pb::FileHeader h = header(bad_job, 1, "model.safetensors", body);
    EXPECT_EQ(put(*stub, &h, {body}).error_code(), Code::INVALID_ARGUMENT) << bad_job;
    pb::SaveStatus reply;
    EXPECT_EQ(arrive(*stub, arrival(bad_job, 1, 0, 1), &reply).error_code(), Code::INVALID_ARGUMENT) << bad_job;
  }
  const pb::FileHeader negative = header(job, -1, "model.safetensors", body);
  EXPECT_EQ(put(*stub, &negative, {body}).error_code(), Code::INVALID_ARGUMENT);
  pb::SaveStatus reply;
  EXPECT_EQ(arrive(*stub, arrival(job, -1, 0, 1), &reply).error_code(), Code::INVALID_ARGUMENT);

  // A first message without the header.
  EXPECT_EQ(put(*stub, nullptr, {body}).error_code(), Code::INVALID_ARGUMENT);

  // Twice the 8 bytes announced, then the right size with a wrong checksum:
  // the file did not arrive intact, and an arrival that names it anyway
  // publishes nothing.
  pb::FileHeader h = header(job, 2, "model.safetensors", body);
  EXPECT_EQ(put(*stub, &h, {body, body}).error_code(), Code::DATA_LOSS);
  h.set_xxh3_64(h.xxh3_64() ^ 1);
  EXPECT_EQ(put(*stub, &h, {body}).error_code(), Code::DATA_LOSS);
  const FileRecord claimed{"model.safetensors", body.size(), xxh3_of(body.data(), body.size())};
  ASSERT_TRUE(arrive(*stub, arrival(job, 2, 0, 1, {claimed}), &reply).ok());
  EXPECT_EQ(reply.state(), pb::SaveStatus::FAILED);

  // One message of 5 MiB: above gRPC's receive limit of 4 MiB + 64 KiB.
  const std::string big(size_t{5} << 20, 'x');
  const pb::FileHeader hb = header(job, 3, "model.safetensors", big);
  EXPECT_EQ(put(*stub, &hb, {big}).error_code(), Code::RESOURCE_EXHAUSTED);

  // Bytes that are no protobuf: a varint that never ends.
  const grpc::Status garbage = raw_unary(service->address(), "/lintrain.ckpt.v1.Checkpoints/Arrive", "\xff\xff\xff\xff");
  EXPECT_FALSE(garbage.ok());

  // Still answering, and nothing was published.
  EXPECT_EQ(service_hello(ep(), 5), service->dir());
  EXPECT_TRUE(entries("step-").empty());
  EXPECT_FALSE(fs::exists(dir() + "/" + kLatestName));
}

TEST_F(ServiceTest, AnotherJobCannotWriteAPendingStep) {
  service = start();
  // Job A's rank 1 arrives at step 5: a fresh pending save of job A.
  const SaveReport ra = save(*saver_for(job, 1, 2), 5, b);
  ASSERT_TRUE(ra.ok) << ra.error;

  std::string other = new_job_id();
  while (other == job) other = new_job_id();
  auto stub = raw_stub(service->address());
  const std::string body = "8 bytes!";
  const pb::FileHeader h = header(other, 5, "model.safetensors", body);
  const grpc::Status put_status = put(*stub, &h, {body});
  EXPECT_EQ(put_status.error_code(), Code::ALREADY_EXISTS);
  EXPECT_TRUE(contains(put_status.error_message(), "another writer")) << put_status.error_message();
  pb::SaveStatus reply;
  const grpc::Status arrive_status = arrive(*stub, arrival(other, 5, 0, 1), &reply);
  EXPECT_EQ(arrive_status.error_code(), Code::ALREADY_EXISTS);
  EXPECT_TRUE(contains(arrive_status.error_message(), "another writer")) << arrive_status.error_message();

  // Job B's saver gives up at once (no retry can cure it).
  const SaveReport rb = save(*saver_for(other, 0, 1), 5, a);
  EXPECT_FALSE(rb.ok);
  EXPECT_TRUE(contains(rb.error, "another writer")) << rb.error;

  // Job A's save is still pending with its one arrival.
  const pb::SaveStatus sa = status_of(*stub, job, 5);
  EXPECT_EQ(sa.state(), pb::SaveStatus::PENDING);
  EXPECT_EQ(sa.arrived(), 1);
}

// Two runs on one service (probe F3): the second, started fresh, must not
// replace the first run's published steps, which its next resume would take
// as its own. A run that went back to an older checkpoint here may.
TEST_F(ServiceTest, AnotherRunCannotReplaceAPublishedStep) {
  service = start();
  for (int64_t step : {4, 8}) {
    const SaveReport r = save(*saver_for(job, 0, 1), step, a);
    ASSERT_TRUE(r.ok) << r.error;
  }
  const Manifest before = manifest(8);
  std::string other = new_job_id();
  while (other == job) other = new_job_id();

  // Started fresh: refused at once, naming the step, its job and the fixes.
  const SaveReport fresh = save(*saver_for(other, 0, 1), 8, b);
  EXPECT_FALSE(fresh.ok);
  for (const std::string& want : {"step 8 already holds job " + job, std::string("ckpt serve --dir DIR"),
                                  std::string("resume: auto")})
    EXPECT_TRUE(contains(fresh.error, want)) << "no '" << want << "' in: " << fresh.error;
  EXPECT_EQ(manifest(8).job, job);
  EXPECT_EQ(manifest(8).created_unix, before.created_unix);
  EXPECT_TRUE(entries(".pending-").empty());
  // An arrival alone (a rank with no files) is refused the same way.
  auto stub = raw_stub(service->address());
  pb::SaveStatus reply;
  EXPECT_EQ(arrive(*stub, arrival(other, 8, 0, 1), &reply).error_code(), Code::ALREADY_EXISTS);
  // A new step is its own.
  EXPECT_TRUE(save(*saver_for(other, 0, 1), 9, b).ok);

  // The first run again (a new job, as every start is) resumed from step 4
  // here: it went back, and its step 8 replaces the old one.
  std::string resumed = new_job_id();
  while (resumed == job || resumed == other) resumed = new_job_id();
  SaverOptions o = options(resumed, 0, 1);
  o.resumed_from = 4;
  CheckpointSaver back(o, service_target(ep(), 0, 1));
  const SaveReport r = save(back, 8, b);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(manifest(8).job, resumed);
  // The job that published a step may save it again.
  EXPECT_TRUE(save(back, 8, a).ok);
}

// ---- a service that goes away ---------------------------------------------------

TEST_F(ServiceTest, PendingSaveSurvivesAServiceRestart) {
  service = start();
  const SaveReport r1 = save(*saver_for(job, 1, 2), 3, b);
  ASSERT_TRUE(r1.ok) << r1.error;
  service->shutdown();
  service.reset();  // releases the directory's writer lock

  service = start();  // another port: rank 0 talks to the new address
  const SaveReport r0 = save(*saver_for(job, 0, 2), 3, a);
  ASSERT_TRUE(r0.ok) << r0.error;
  EXPECT_EQ(r0.where, service->dir() + "/step-00000003");
  const Manifest m = manifest(3);
  ASSERT_EQ(m.ranks.size(), 2u);
  EXPECT_EQ(m.ranks[1].rank, 1);
  EXPECT_EQ(m.ranks[0].replica_xxh3, m.ranks[1].replica_xxh3);
}

TEST_F(ServiceTest, ClientRidesOutAServiceThatIsAway) {
  // A port that was free a moment ago; nothing listens on it now.
  const std::string address = start()->address();
  std::mutex mu;
  std::vector<std::string> notices;
  SaverOptions o = options(job, 0, 1);
  o.timeout_s = 30;
  CheckpointSaver saver(o, service_target(service_endpoint(address, ""), 0, 1, [&](const std::string& text) {
                          std::lock_guard<std::mutex> lock(mu);
                          notices.push_back(text);
                        }));
  const RunState state = a.state();
  saver.save(1, state);  // async: training would go on
  std::this_thread::sleep_for(std::chrono::seconds(1));
  service = start(address);
  saver.finish();
  const std::vector<SaveReport> reports = saver.take_reports();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_TRUE(reports[0].ok) << reports[0].error;
  EXPECT_EQ(reports[0].where, service->dir() + "/step-00000001");
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_FALSE(notices.empty());
  EXPECT_TRUE(contains(notices.front(), "retrying")) << notices.front();
  EXPECT_TRUE(contains(notices.back(), "answers again")) << notices.back();
}

TEST_F(ServiceTest, SaveTimesOutWhileNothingListens) {
  const std::string address = start()->address();  // a port nothing listens on now
  SaveReport r;
  const double took = save_with_short_timeout(address, &r);
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(contains(r.error, "timed out")) << r.error;
  // 1.5 s, plus the last refused attempt (loopback refuses at once); 5 s is
  // margin for a loaded machine, far below the 30 s per-call deadline.
  EXPECT_GE(took, 1.4);
  EXPECT_LT(took, 5.0);
}

// A service that takes the connection and never answers (hung, stopped with
// SIGSTOP): the save must still end at its deadline, as client.h promises.
TEST_F(ServiceTest, SaveTimesOutWhileTheServiceHangs) {
  // A socket that listens but is never accepted: the kernel completes the
  // TCP handshake, nothing speaks HTTP/2.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof sa;
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&sa), len), 0);
  ASSERT_EQ(::listen(fd, 16), 0);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len), 0);
  SaveReport r;
  const double took = save_with_short_timeout("127.0.0.1:" + std::to_string(ntohs(sa.sin_port)), &r);
  ::close(fd);
  EXPECT_FALSE(r.ok);
  EXPECT_TRUE(contains(r.error, "timed out")) << r.error;
  EXPECT_LT(took, 5.0);  // the same margin as above
}

// ---- retention and listing --------------------------------------------------------

TEST_F(ServiceTest, RetentionKeepsTheNewestTwo) {
  service = start();
  SaverOptions o = options(job, 0, 1);
  o.keep = 2;
  CheckpointSaver saver(o, service_target(ep(), 0, 1));
  for (int64_t step = 1; step <= 4; ++step) {
    const SaveReport r = save(saver, step, a);
    ASSERT_TRUE(r.ok) << "step " << step << ": " << r.error;
  }
  const std::vector<CheckpointInfo> listed = service_source(ep(), 5)->list();
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[0].step, 3);
  EXPECT_EQ(listed[1].step, 4);
  for (const CheckpointInfo& c : listed) {
    EXPECT_TRUE(c.complete) << c.problem;
    EXPECT_EQ(c.world_size, 1);
    EXPECT_GT(c.bytes, 0u);
  }
  EXPECT_EQ(entries("step-"), (std::vector<std::string>{"step-00000003", "step-00000004"}));
}

// ---- retried arrivals -------------------------------------------------------------

// The client sends Arrive again whenever an answer is lost (UNAVAILABLE,
// DEADLINE_EXCEEDED, a service restarted after publishing but before it
// replied). A repeat of an arrival that already published must not turn
// the save into a failure.
TEST_F(ServiceTest, RepeatedArrivalAfterPublishingKeepsItPublished) {
  service = start();
  const SaveReport r = save(*saver_for(job, 0, 1), 2, a);
  ASSERT_TRUE(r.ok) << r.error;

  // The same arrival again, as the client's retry would send it.
  const Manifest m = manifest(2);
  pb::ArriveRequest again = arrival(job, 2, 0, 1, m.files);
  again.set_replica_xxh3_64(m.ranks[0].replica_xxh3);
  again.set_keep(3);  // SaverOptions' default
  auto stub = raw_stub(service->address());
  pb::SaveStatus reply;
  ASSERT_TRUE(arrive(*stub, again, &reply).ok());
  EXPECT_EQ(reply.state(), pb::SaveStatus::PUBLISHED) << reply.error();
  EXPECT_EQ(status_of(*stub, job, 2).state(), pb::SaveStatus::PUBLISHED);
  EXPECT_TRUE(entries(".pending-").empty());

  // A restarted service has forgotten what it published: the folder's
  // manifest (naming the job) must answer instead.
  service->shutdown();
  service.reset();
  service = start();
  stub = raw_stub(service->address());
  ASSERT_TRUE(arrive(*stub, again, &reply).ok());
  EXPECT_EQ(reply.state(), pb::SaveStatus::PUBLISHED) << reply.error();
  EXPECT_TRUE(entries(".pending-").empty());
  EXPECT_NO_THROW(open_checkpoint_path(service->dir(), kNoWarning));
}
