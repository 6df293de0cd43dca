// TensorBoard event files (runtime/io/tensorboard/event_writer.h): the CRC-32C
// against published vectors (RFC 3720, B.4) and TensorBoard's own Python
// implementation, the bytes of a TFRecord and of an Event on the wire
// written out by hand from the format's description, and the writer's
// promises: the caller is never held up (a full queue drops and counts), a
// failing disk is warned about and never thrown to the caller.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>

#include "runtime/io/crc32c.h"
#include "runtime/io/tensorboard/event.pb.h"
#include "runtime/io/tensorboard/event_writer.h"
#include "temp_dir.h"

namespace lintrain {
namespace {

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

uint64_t le(const std::string& s, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(s[at + static_cast<size_t>(i)]);
  return v;
}

// The records of an event file, each CRC checked.
std::vector<tb::Event> read_events(const std::string& path) {
  const std::string s = read_all(path);
  std::vector<tb::Event> events;
  size_t at = 0;
  while (at < s.size()) {
    EXPECT_LE(at + 12, s.size());
    const uint64_t n = le(s, at, 8);
    EXPECT_EQ(le(s, at + 8, 4), crc32c_mask(crc32c(s.data() + at, 8)));
    const std::string data = s.substr(at + 12, n);
    EXPECT_EQ(le(s, at + 12 + n, 4), crc32c_mask(crc32c(data.data(), data.size())));
    tb::Event e;
    EXPECT_TRUE(e.ParseFromString(data));
    events.push_back(e);
    at += 12 + n + 4;
  }
  return events;
}

TEST(Crc32c, KnownVectors) {
  EXPECT_EQ(crc32c("", 0), 0u);
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);  // the CRC catalogue's check value
  unsigned char buf[32];
  std::memset(buf, 0, sizeof buf);
  EXPECT_EQ(crc32c(buf, 32), 0x8A9136AAu);  // RFC 3720 B.4: 32 bytes of zeros
  std::memset(buf, 0xFF, sizeof buf);
  EXPECT_EQ(crc32c(buf, 32), 0x62A8AB43u);  // 32 bytes of 0xFF
  for (int i = 0; i < 32; ++i) buf[i] = static_cast<unsigned char>(i);
  EXPECT_EQ(crc32c(buf, 32), 0x46DD794Eu);  // 0x00..0x1F ascending
}

// The framing of "abc", byte for byte; the two masked CRCs are the values
// tensorboard.compat.tensorflow_stub.pywrap_tensorflow.masked_crc32c gives.
TEST(TfRecord, FramingBytes) {
  const std::string r = tfrecord_frame("abc");
  const std::string want = std::string("\x03\0\0\0\0\0\0\0", 8) + std::string("\xb0\x99\x49\x0e", 4) + "abc" +
                           std::string("\x6e\x57\xf1\x21", 4);
  EXPECT_EQ(r, want);
  EXPECT_EQ(tfrecord_frame("").size(), 16u);
}

// An Event's wire bytes (protobuf encoding written out by hand): step 7,
// summary { value { tag "a", simple_value 0.0 } }. The zero must be on the
// wire: TensorBoard takes a value as a scalar only when the field is present.
TEST(TfRecord, EventWireBytes) {
  tb::Event e;
  e.set_step(7);
  tb::SummaryValue* v = e.mutable_summary()->add_value();
  v->set_tag("a");
  v->set_simple_value(0.0f);
  std::string bytes;
  ASSERT_TRUE(e.SerializeToString(&bytes));
  const std::string want("\x10\x07"                     // field 2 (step), varint 7
                         "\x2a\x0a"                     // field 5 (summary), 10 bytes
                         "\x0a\x08"                     // field 1 (value), 8 bytes
                         "\x0a\x01" "a"                 // field 1 (tag) "a"
                         "\x15\x00\x00\x00\x00",        // field 2 (simple_value), fixed32 0.0f
                         14);
  EXPECT_EQ(bytes, want);
  tb::Event start;
  start.set_step(5);
  start.mutable_session_log()->set_status(tb::SessionLog::START);
  ASSERT_TRUE(start.SerializeToString(&bytes));
  EXPECT_EQ(bytes, std::string("\x10\x05\x3a\x02\x08\x01", 6));  // field 7 (session_log) { status: 1 }
}

TEST(EventWriter, WritesVersionScalarsAndStart) {
  test::TempDir dir("tb");
  const std::string path = new_event_file_path(dir.str());
  EXPECT_NE(path.find("/events.out.tfevents."), std::string::npos);
  {
    EventFileWriter w(path);
    w.add_session_start(4);
    w.add_scalars(4, "train/", {{"loss", 2.5}, {"lr", 0.0}});
    w.add_scalars(6, "eval/", {{"accuracy", 0.25}});
    w.finish();
    EXPECT_EQ(w.written(), 4u);
    EXPECT_EQ(w.dropped(), 0u);
    EXPECT_EQ(w.loss_report(), "");
  }
  const std::vector<tb::Event> ev = read_events(path);
  ASSERT_EQ(ev.size(), 4u);
  EXPECT_EQ(ev[0].file_version(), "brain.Event:2");
  EXPECT_EQ(ev[1].session_log().status(), tb::SessionLog::START);
  EXPECT_EQ(ev[1].step(), 4);
  ASSERT_EQ(ev[2].summary().value_size(), 2);
  EXPECT_EQ(ev[2].step(), 4);
  EXPECT_EQ(ev[2].summary().value(0).tag(), "train/loss");
  EXPECT_EQ(ev[2].summary().value(0).simple_value(), 2.5f);
  EXPECT_TRUE(ev[2].summary().value(1).has_simple_value());
  EXPECT_EQ(ev[3].summary().value(0).tag(), "eval/accuracy");
  const double now = static_cast<double>(std::time(nullptr));
  EXPECT_NEAR(ev[3].wall_time(), now, 60.0);  // seconds since the epoch, not a monotonic clock
}

// A resumed run's file must sort after the files already in the folder (the
// reader reads them in name order), even when their time is ahead of ours.
TEST(EventWriter, NewFileSortsAfterExistingOnes) {
  test::TempDir dir("tb");
  const long long ahead = static_cast<long long>(std::time(nullptr)) + 1000;
  const std::string old = dir.str() + "/events.out.tfevents." + std::to_string(ahead) + ".host.1.0";
  std::ofstream(old).put('x');
  const std::string fresh = new_event_file_path(dir.str());
  EXPECT_GT(fresh, old);
  EXPECT_NE(fresh.find(std::to_string(ahead + 1)), std::string::npos);
}

// With the background thread asleep (a flush an hour away), the queue fills:
// add_scalars returns at once, drops and counts, and warns once.
TEST(EventWriter, FullQueueDropsAndCountsWithoutBlocking) {
  test::TempDir dir("tb");
  std::vector<std::string> warnings;
  std::mutex mu;
  EventWriterOptions opt;
  opt.queue_capacity = 4;
  opt.flush_every_s = 3600;
  opt.warn = [&](const std::string& s) {
    std::lock_guard<std::mutex> lock(mu);
    warnings.push_back(s);
  };
  const std::string path = dir.str() + "/events.out.tfevents.1.h.1.0";
  EventFileWriter w(path, opt);
  const auto t0 = std::chrono::steady_clock::now();
  for (int s = 1; s <= 10; ++s) w.add_scalars(s, "train/", {{"loss", s}});
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(took, 1.0);  // ten queue pushes; an hour if it waited for the writer
  EXPECT_EQ(w.dropped(), 6u);
  w.finish();
  EXPECT_EQ(w.written(), 5u);  // file_version + the 4 queued
  ASSERT_EQ(warnings.size(), 2u);  // the queue full (once), and the count at finish
  EXPECT_NE(warnings[0].find("queue is full"), std::string::npos);
  EXPECT_NE(warnings[1].find("6 TensorBoard events did not reach"), std::string::npos);
  const std::vector<tb::Event> ev = read_events(path);
  ASSERT_EQ(ev.size(), 5u);
  EXPECT_EQ(ev[4].step(), 4);
}

// /dev/full fails every write with ENOSPC: the writer warns (once), nothing
// is thrown, and finish() counts what never made it.
TEST(EventWriter, DiskFullWarnsAndNeverThrows) {
  std::vector<std::string> warnings;
  std::mutex mu;
  EventWriterOptions opt;
  opt.flush_every_s = 0.01;
  opt.warn = [&](const std::string& s) {
    std::lock_guard<std::mutex> lock(mu);
    warnings.push_back(s);
  };
  EventFileWriter w("/dev/full", opt);
  for (int s = 1; s <= 3; ++s) {
    w.add_scalars(s, "train/", {{"loss", s}});
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // a few failing flushes
  }
  EXPECT_NO_THROW(w.finish());
  EXPECT_EQ(w.written(), 0u);
  EXPECT_EQ(w.dropped(), 4u);  // file_version and the three events
  ASSERT_EQ(warnings.size(), 2u);  // one per failure episode, then the count
  EXPECT_NE(warnings[0].find("No space left"), std::string::npos);
  EXPECT_NE(w.loss_report().find("4 TensorBoard events did not reach /dev/full"), std::string::npos);
}

// A file that cannot be created: a warning, and training would go on.
TEST(EventWriter, UncreatableFileWarnsAndDrops) {
  std::vector<std::string> warnings;
  EventWriterOptions opt;
  opt.warn = [&](const std::string& s) { warnings.push_back(s); };
  EventFileWriter w("/nonexistent-dir/events.out.tfevents.1.h.1.0", opt);
  w.add_scalars(1, "train/", {{"loss", 1}});
  w.finish();
  EXPECT_EQ(w.dropped(), 1u);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("cannot create TensorBoard event file"), std::string::npos);
}

}  // namespace
}  // namespace lintrain
