// safetensors read/write, the JSON reader and config.json. The independent
// reference is the Python `safetensors` package (its Rust core): it reads our
// files and writes files we read. Corrupt files must give IoError, never a
// crash, including every truncation and every single-byte header corruption.
#include <gtest/gtest.h>

#include <sys/resource.h>
#include <unistd.h>

#include <csignal>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "runtime/dtype.h"
#include "runtime/error.h"
#include "temp_dir.h"
#include "runtime/io/atomic_file.h"
#include "runtime/io/hf_config.h"
#include "runtime/io/json.h"
#include "runtime/io/safetensors.h"

using namespace lintrain;
namespace fs = std::filesystem;

namespace {

using test::TempDir;

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
void write_all(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

bool python_has(const std::string& modules) {
  return std::system(("python3 -c 'import " + modules + "' >/dev/null 2>&1").c_str()) == 0;
}
// Runs a Python script with arguments; returns its exit status.
int run_python(const TempDir& dir, const std::string& script, const std::string& args) {
  const std::string path = dir.file("check.py");
  write_all(path, script);
  return std::system(("python3 " + path + " " + args).c_str());
}

// The test tensors: every dtype, an odd-sized BF16 (misaligns anything after
// it unless the writer orders by element size), a scalar and an empty tensor.
struct Fixture {
  std::vector<float> f32 = {-1.0f, -0.75f, -0.5f, -0.25f, 0.0f, 0.25f};  // (2, 3): i * 0.25 - 1
  std::vector<uint16_t> bf16;                                           // (5): (i - 2) * 0.5
  std::vector<int32_t> i32 = {-7, 0, 1, 2147483647};
  std::vector<uint16_t> u16 = {0, 65535, 12345};
  std::vector<uint32_t> u32 = {0, 1, 4294967295u, 123456789u};  // (2, 2)
  std::vector<uint8_t> e4m3 = {0x00, 0x38, 0xB8};                // 0, 1, -1
  float scalar = 3.5f;
  Fixture() {
    for (int i = 0; i < 5; ++i) bf16.push_back(f32_to_bf16(static_cast<float>(i - 2) * 0.5f));
  }
  std::vector<SafeTensor> tensors() const {
    return {
        {"model.layers.0.self_attn.q_proj.weight", DType::F32, {2, 3}, f32.data()},
        {"odd.bf16", DType::BF16, {5}, bf16.data()},
        {"ids.i32", DType::I32, {4}, i32.data()},
        {"ids.u16", DType::U16, {3}, u16.data()},
        {"ids.u32", DType::U32, {2, 2}, u32.data()},
        {"fp8", DType::F8E4M3, {3}, e4m3.data()},
        {"scalar", DType::F32, {}, &scalar},
        {"empty", DType::F32, {0, 4}, nullptr},
    };
  }
};

const std::map<std::string, std::string> kMetadata = {{"format", "pt"}, {"lintrain_step", "12"},
                                                      {"quote\"and\\slash", "line\nbreak"}};

// A file from a header text and a data section, with a correct length prefix.
std::string make_file(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<char>(n >> (8 * i));
  return out + header + data;
}

void expect_io_error(const std::string& path, const std::string& fragment) {
  try {
    load_safetensors(path);
    ADD_FAILURE() << "no error for " << fragment;
  } catch (const IoError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find(fragment), std::string::npos) << "'" << fragment << "' not in: " << msg;
  }
}

// The message of the lintrain::Error that f throws, "" when it throws none.
std::string error_message(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

// ---- JSON ------------------------------------------------------------------------

TEST(Json, ParsesValidDocuments) {
  const nlohmann::json v = parse_json(R"( {"a": [1, -2.5e3, true, false, null], "b": {"c": "x\u00e9\ud83d\ude00\n"}} )");
  ASSERT_TRUE(v.is_object());
  const nlohmann::json& a = v.at("a");
  ASSERT_EQ(a.size(), 5u);
  EXPECT_TRUE(a[0].is_number_unsigned());
  EXPECT_EQ(a[0].get<uint64_t>(), 1u);
  EXPECT_DOUBLE_EQ(a[1].get<double>(), -2500.0);
  EXPECT_TRUE(a[2].get<bool>());
  EXPECT_TRUE(a[4].is_null());
  EXPECT_EQ(v.at("b").at("c").get<std::string>(), "x\xC3\xA9\xF0\x9F\x98\x80\n");
  // is_number_unsigned() is the readers' test for a count or offset: digits
  // only, below 2^64.
  EXPECT_TRUE(parse_json("18446744073709551615").is_number_unsigned());
  EXPECT_EQ(parse_json("18446744073709551615").get<uint64_t>(), UINT64_MAX);
  for (const char* not_count : {"18446744073709551616", "-1", "-0", "1.0", "1e3"})
    EXPECT_FALSE(parse_json(not_count).is_number_unsigned()) << not_count;
  // 64 nested arrays are the most that is accepted.
  EXPECT_NO_THROW(parse_json(std::string(kJsonMaxDepth, '[') + std::string(kJsonMaxDepth, ']')));
}

TEST(Json, RejectsInvalidDocumentsSayingWhatAndWhere) {
  // Each with a fragment of what its message must say.
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "unexpected end of input"},
      {"{", "unexpected end of input"},
      {"[1,]", "unexpected ']'"},
      {"{\"a\":1,}", "unexpected '}'"},
      {"{\"a\" 1}", "expected ':'"},
      {"{a:1}", "invalid literal"},
      {"01", "expected end of input"},
      {"1.", "expected digit after '.'"},
      {"-", "expected digit after '-'"},
      {"1e", "after exponent"},
      {"nan", "invalid literal"},
      {"Infinity", "invalid literal"},
      {"1e400", "number overflow"},
      {"\"\\x\"", "forbidden character after backslash"},
      {"\"abc", "missing closing quote"},
      {"\"a\nb\"", "control character U+000A"},
      {"[1] 2", "expected end of input"},
      {"{\"a\":1,\"a\":2}", "duplicate key \"a\" at byte 10"},
      {"{\"b\":{\"x\":1},\"a\":[{\"x\":2,\"y\":3,\"x\":4}]}", "duplicate key \"x\""},
      {"\"\\ud800\"", "surrogate"},
      {"\"\xC0\xAF\"", "ill-formed UTF-8"},
      {"\"\xFF\"", "ill-formed UTF-8 byte; last read: '\"\\xff'"},  // shown escaped
      {"\"\xED\xA0\x80\"", "ill-formed UTF-8"},  // a surrogate encoded in UTF-8
      {"tru", "invalid literal; last read: 'tru' at byte 3"},
      {"// c\n1", "invalid literal"},
      {"/* c */ 1", "invalid literal"},
      {"\xEF\xBB\xBF{}", "byte order mark"},
      {std::string(kJsonMaxDepth + 1, '[') + std::string(kJsonMaxDepth + 1, ']'), "nesting deeper than 64 levels"},
      // Deep nesting is an error, not a stack overflow.
      {std::string(100000, '[') + std::string(100000, ']'), "nesting deeper than 64 levels at byte 65"},
      {"{\"a\":" + std::string(1000, '[') + std::string(1000, ']') + "}", "nesting deeper than 64 levels at byte 69"},
  };
  for (const auto& [bad, says] : cases) {
    const std::string msg = error_message([&] { parse_json(bad); });
    EXPECT_EQ(msg.rfind("[json] ", 0), 0u) << "accepted or not a JSON error: " << bad << " -> " << msg;
    EXPECT_NE(msg.find(" at byte "), std::string::npos) << msg;
    EXPECT_NE(msg.find(says), std::string::npos) << "'" << says << "' not in: " << msg;
  }
  // What a message quotes of the input is cut short: an unterminated string
  // would otherwise quote all of it.
  const std::string msg = error_message([] { parse_json("\"" + std::string(1000000, 'a')); });
  EXPECT_LT(msg.size(), 400u) << msg;
  EXPECT_NE(msg.find("missing closing quote"), std::string::npos) << msg;
}

TEST(Json, WritersRoundTrip) {
  for (double d : {1e-5, 10000.0, 0.1, -3.0, 1.0 / 3.0, 5e-324, 1.7976931348623157e308, double{0.99f}}) {
    const std::string s = dump_json(d);
    EXPECT_EQ(parse_json(s).get<double>(), d) << s;
    EXPECT_NE(s.find_first_of(".e"), std::string::npos) << s;  // stays a float for every reader
  }
  EXPECT_EQ(dump_json(10000.0), "10000.0");
  EXPECT_EQ(dump_json(1e-5), "1e-05");
  EXPECT_NE(error_message([] { dump_json({{"a", {1.0, NAN}}}); }).find("/a/1: it is not finite"), std::string::npos);
  EXPECT_THROW(dump_json(INFINITY), Error);
  EXPECT_NE(error_message([] { dump_json("\xFF"); }).find("not valid UTF-8"), std::string::npos);
  const std::string raw = std::string("q\"b\\s/\n\t\x01") + "\xC3\xA9";
  EXPECT_EQ(parse_json(dump_json(raw)).get<std::string>(), raw);
}

// ---- safetensors round trip ------------------------------------------------------

TEST(Safetensors, RoundTripKeepsEveryByteShapeDtypeAndMetadata) {
  TempDir dir;
  const Fixture fx;
  const std::string path = dir.file("model.safetensors");
  save_safetensors(path, fx.tensors(), kMetadata);

  const std::string bytes = read_all(path);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ((8 + n) % 8, 0u) << "data section must start 8-byte aligned";

  const SafeTensorFile f = load_safetensors(path);
  EXPECT_EQ(f.metadata(), kMetadata);
  ASSERT_EQ(f.tensors().size(), fx.tensors().size());
  for (const SafeTensor& want : fx.tensors()) {
    ASSERT_TRUE(f.contains(want.name)) << want.name;
    const SafeTensor& got = f.get(want.name);
    EXPECT_EQ(got.dtype, want.dtype) << want.name;
    EXPECT_EQ(got.shape, want.shape) << want.name;
    ASSERT_EQ(got.nbytes(), want.nbytes()) << want.name;
    if (want.nbytes() > 0) {
      EXPECT_EQ(std::memcmp(got.data, want.data, want.nbytes()), 0) << want.name;
    }
    EXPECT_EQ(reinterpret_cast<uintptr_t>(got.data) % dtype_size(got.dtype), 0u) << want.name << " misaligned";
  }
  EXPECT_THROW(f.get("missing"), IoError);
  // Overwriting an existing file replaces it.
  save_safetensors(path, {fx.tensors()[2]});
  EXPECT_EQ(load_safetensors(path).tensors().size(), 1u);
}

TEST(Safetensors, WriterRejectsBadInput) {
  TempDir dir;
  const Fixture fx;
  auto t = fx.tensors();
  EXPECT_THROW(save_safetensors(dir.file("a"), {t[0], t[0]}), Error);
  EXPECT_THROW(save_safetensors(dir.file("b"), {{"__metadata__", DType::F32, {1}, &fx.scalar}}), Error);
  EXPECT_THROW(save_safetensors(dir.file("c"), {{"", DType::F32, {1}, &fx.scalar}}), Error);
  EXPECT_THROW(save_safetensors(dir.file("d"), {{"x", DType::F32, {-1}, &fx.scalar}}), Error);
  EXPECT_THROW(save_safetensors(dir.file("e"), {{"x", DType::F32, {1}, nullptr}}), Error);
  EXPECT_THROW(save_safetensors(dir.file("nodir/f.safetensors"), t), IoError);
  EXPECT_TRUE(dir.listing().empty());
}

TEST(Safetensors, PythonPackageReadsOurFile) {
  if (!python_has("safetensors, numpy")) {
    GTEST_SKIP() << "python3 with the safetensors and numpy packages not found";
  }
  TempDir dir;
  const Fixture fx;
  const std::string path = dir.file("ours.safetensors");
  save_safetensors(path, fx.tensors(), kMetadata);
  const char* script = R"PY(
import sys
import numpy as np
from safetensors import deserialize, safe_open
path = sys.argv[1]
raw = {name: info for name, info in deserialize(open(path, "rb").read())}
def spec(name, dtype, shape):
    assert raw[name]["dtype"] == dtype, (name, raw[name]["dtype"])
    assert list(raw[name]["shape"]) == shape, (name, raw[name]["shape"])
spec("model.layers.0.self_attn.q_proj.weight", "F32", [2, 3])
spec("odd.bf16", "BF16", [5]); spec("ids.i32", "I32", [4]); spec("ids.u16", "U16", [3])
spec("ids.u32", "U32", [2, 2]); spec("fp8", "F8_E4M3", [3]); spec("scalar", "F32", []); spec("empty", "F32", [0, 4])
with safe_open(path, framework="np") as f:
    assert f.metadata() == {"format": "pt", "lintrain_step": "12", "quote\"and\\slash": "line\nbreak"}, f.metadata()
    w = f.get_tensor("model.layers.0.self_attn.q_proj.weight")
    assert w.dtype == np.float32 and np.array_equal(w, (np.arange(6, dtype=np.float32) * 0.25 - 1).reshape(2, 3)), w
    assert np.array_equal(f.get_tensor("ids.i32"), np.array([-7, 0, 1, 2147483647], dtype=np.int32))
    assert np.array_equal(f.get_tensor("ids.u16"), np.array([0, 65535, 12345], dtype=np.uint16))
    assert np.array_equal(f.get_tensor("ids.u32"), np.array([[0, 1], [4294967295, 123456789]], dtype=np.uint32))
    assert f.get_tensor("scalar") == np.float32(3.5)
    assert f.get_tensor("empty").shape == (0, 4)
# numpy has no bfloat16: widen the raw bits by hand (bf16 = top half of an f32).
bf = (np.frombuffer(raw["odd.bf16"]["data"], dtype="<u2").astype(np.uint32) << 16).view(np.float32)
assert np.array_equal(bf, (np.arange(5, dtype=np.float32) - 2) * 0.5), bf
assert bytes(raw["fp8"]["data"]) == bytes([0x00, 0x38, 0xB8])
print("python safetensors: OK")
)PY";
  EXPECT_EQ(run_python(dir, script, path), 0);
}

TEST(Safetensors, WeReadThePythonPackagesFile) {
  if (!python_has("safetensors, numpy")) {
    GTEST_SKIP() << "python3 with the safetensors and numpy packages not found";
  }
  TempDir dir;
  const std::string path = dir.file("theirs.safetensors");
  const char* script = R"PY(
import sys
import numpy as np
from safetensors.numpy import save_file
save_file({
    "a": (np.arange(12, dtype=np.float32) / 8).reshape(3, 4),
    "b": np.array([1, 2, 3], dtype=np.uint16),
    "c": np.array([-5, 6], dtype=np.int32),
    "d": np.array([7], dtype=np.uint32),
}, sys.argv[1], metadata={"who": "python"})
)PY";
  ASSERT_EQ(run_python(dir, script, path), 0);
  const SafeTensorFile f = load_safetensors(path);
  EXPECT_EQ(f.metadata().at("who"), "python");
  const SafeTensor& a = f.get("a");
  EXPECT_EQ(a.dtype, DType::F32);
  EXPECT_EQ(a.shape, (Shape{3, 4}));
  for (int i = 0; i < 12; ++i) {
    float v;
    std::memcpy(&v, static_cast<const char*>(a.data) + 4 * i, 4);
    EXPECT_EQ(v, static_cast<float>(i) / 8);
  }
  uint16_t b[3];
  std::memcpy(b, f.get("b").data, sizeof b);
  EXPECT_EQ(b[2], 3);
  int32_t c[2];
  std::memcpy(c, f.get("c").data, sizeof c);
  EXPECT_EQ(c[0], -5);
  EXPECT_EQ(f.get("d").dtype, DType::U32);
}

// ---- corrupt files ---------------------------------------------------------------

TEST(Safetensors, CorruptFilesGiveClearIoErrors) {
  TempDir dir;
  const std::string p = dir.file("bad.safetensors");
  const std::string t8(8, '\x01');  // data for an F32 (2)
  const std::string ok_entry = R"("x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";

  write_all(p, make_file("{" + ok_entry + "}", t8));
  EXPECT_NO_THROW(load_safetensors(p));  // the baseline is valid

  write_all(p, "abc");
  expect_io_error(p, "shorter than the 8-byte header length");
  std::string huge(8, '\0');
  huge[7] = 0x10;  // 2^60
  write_all(p, huge + "{}");
  expect_io_error(p, "above the limit");
  write_all(p, make_file("{" + ok_entry + "}", t8).replace(0, 1, "\x7f"));
  expect_io_error(p, "runs past the end");
  write_all(p, make_file("{" + ok_entry + "}", t8).substr(0, 40));
  expect_io_error(p, "runs past the end");
  write_all(p, make_file("{" + ok_entry + "}", t8.substr(0, 5)));  // truncated data
  expect_io_error(p, "past the end of the 5-byte data section");
  write_all(p, make_file("{" + ok_entry + "}", t8 + "zz"));  // trailing bytes
  expect_io_error(p, "cover 8 bytes but the data section has 10");
  write_all(p, make_file("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]", t8));
  expect_io_error(p, "not valid JSON");
  write_all(p, make_file("{\x01garbage}", t8));
  expect_io_error(p, "not valid JSON");
  write_all(p, make_file("[1, 2]", t8));
  expect_io_error(p, "does not start with '{'");
  write_all(p, make_file(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,12]}})", t8));
  expect_io_error(p, "past the end");
  write_all(p, make_file(R"({"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", t8));
  expect_io_error(p, "shape (3,) of F32 (12 bytes)");
  write_all(p, make_file(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", t8));
  expect_io_error(p, "begin > end");
  write_all(p, make_file(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                         R"("y":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}})",
                         t8));
  expect_io_error(p, "overlaps");
  write_all(p, make_file(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", t8));
  expect_io_error(p, "leaving a hole");
  write_all(p, make_file(R"({"x":{"dtype":"F16","shape":[4],"data_offsets":[0,8]}})", t8));
  expect_io_error(p, "dtype 'F16'");
  write_all(p, make_file(R"({"x":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", t8));
  expect_io_error(p, "shape entry");
  write_all(p, make_file(R"({"x":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,8]}})", t8));
  expect_io_error(p, "too many");
  write_all(p, make_file(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"extra":1}})", t8));
  expect_io_error(p, "fields other than");
  write_all(p, make_file(R"({"x":{"dtype":"F32","shape":[2]}})", t8));
  expect_io_error(p, "data_offsets");
  write_all(p, make_file("{" + ok_entry + "," + ok_entry + "}", t8));
  expect_io_error(p, "duplicate key");
  write_all(p, make_file(R"({"__metadata__":{"k":1},)" + ok_entry + "}", t8));
  expect_io_error(p, "__metadata__");
  write_all(p, make_file("{\"a\":" + std::string(1000, '[') + std::string(1000, ']') + "}", ""));
  expect_io_error(p, "nesting");
  expect_io_error(dir.file("does_not_exist.safetensors"), "does_not_exist");
}

// Found by tests/fuzz/fuzz_safetensors (corpus/fuzz_safetensors/regress-empty-overflowing-shape):
// an empty tensor whose other dimensions multiply past 2^63 was accepted, and
// every later use of its shape (nbytes(), shape_numel) overflowed int64.
TEST(Safetensors, EmptyTensorWhoseDimensionsOverflowIsRejected) {
  TempDir dir;
  const std::string p = dir.file("bad.safetensors");
  write_all(p, make_file(R"({"x":{"dtype":"F32","shape":[1099511627776,1099511627776,0],"data_offsets":[0,0]}})", ""));
  expect_io_error(p, "tensor 'x' has shape (1099511627776, 1099511627776, 0), too many elements");
  std::string bytes = make_file(R"({"x":{"dtype":"U16","shape":[0,4294967296,4294967296],"data_offsets":[0,0]}})", "");
  EXPECT_THROW(safetensors_from_bytes("mem", std::vector<uint8_t>(bytes.begin(), bytes.end())), IoError);
  // Empty tensors whose dimensions fit are still fine, whatever their size.
  write_all(p, make_file(R"({"x":{"dtype":"F32","shape":[3037000499,3037000499,0],"data_offsets":[0,0]}})", ""));
  const SafeTensorFile f = load_safetensors(p);
  EXPECT_EQ(f.get("x").nbytes(), 0u);
}

TEST(Safetensors, EveryTruncationAndHeaderByteCorruptionIsHandled) {
  TempDir dir;
  const Fixture fx;
  const std::string good_path = dir.file("good.safetensors");
  save_safetensors(good_path, fx.tensors(), kMetadata);
  const std::string good = read_all(good_path);
  const std::string p = dir.file("bad.safetensors");
  // Every proper prefix is invalid: tensors must cover the data exactly.
  for (size_t len = 0; len < good.size(); ++len) {
    write_all(p, good.substr(0, len));
    EXPECT_THROW(load_safetensors(p), IoError) << "truncated to " << len;
  }
  // Any byte of the length or header replaced: either still a valid file or
  // an IoError; never a crash or another exception type.
  uint64_t n = 0;
  std::memcpy(&n, good.data(), 8);
  int rejected = 0;
  for (size_t i = 0; i < 8 + n; ++i) {
    for (unsigned char b : {0x00, 0x22, 0x5d, 0x7d, 0x31, 0xff}) {
      if (static_cast<unsigned char>(good[i]) == b) continue;
      std::string bad = good;
      bad[i] = static_cast<char>(b);
      write_all(p, bad);
      try {
        load_safetensors(p);
      } catch (const IoError&) {
        ++rejected;
      }
    }
  }
  EXPECT_GT(rejected, 0);
}

// ---- atomic writes ---------------------------------------------------------------

TEST(AtomicFile, LeavesOnlyTheFinalFileOrNothing) {
  TempDir dir;
  const Fixture fx;
  save_safetensors(dir.file("m.safetensors"), fx.tensors());
  save_safetensors(dir.file("m.safetensors"), fx.tensors());  // overwrite
  write_file_atomic(dir.file("config.json"), "{}\n");
  EXPECT_EQ(dir.listing(), (std::vector<std::string>{"config.json", "m.safetensors"}));
  {
    AtomicFileWriter w(dir.file("abandoned.bin"));
    w.write("partial", 7);
    EXPECT_TRUE(fs::exists(w.temp_path()));
    // destroyed without commit(), as when an exception unwinds a save
  }
  EXPECT_EQ(dir.listing(), (std::vector<std::string>{"config.json", "m.safetensors"}));
  // A stale temp name from a crashed process with our pid is skipped, not reused.
  {
    AtomicFileWriter probe(dir.file("x"));
    const std::string stale = probe.temp_path();
    const std::string next_guess = stale.substr(0, stale.find_last_of('.') + 1) +
                                   std::to_string(std::stoi(stale.substr(stale.find_last_of('.') + 1)) + 1);
    write_all(next_guess, "stale");
    AtomicFileWriter w(dir.file("x"));
    EXPECT_NE(w.temp_path(), next_guess);
    w.write("new", 3);
    w.commit();
    fs::remove(next_guess);
  }
  EXPECT_EQ(read_all(dir.file("x")), "new");
}

// A write past the file-size limit (ulimit -f) fails, with SIGXFSZ ignored
// as main does, with an IoError naming the limit and its fix, not a bare
// "File too large"; the temporary file is gone.
TEST(AtomicFile, AWritePastTheFileSizeLimitNamesUlimit) {
  TempDir dir;
  struct rlimit old;
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
  struct rlimit small = old;
  small.rlim_cur = 64 << 10;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  auto* const previous = std::signal(SIGXFSZ, SIG_IGN);
  std::string msg;
  try {
    AtomicFileWriter w(dir.file("big.bin"));
    const std::vector<char> bytes(128 << 10, 'x');
    w.write(bytes.data(), bytes.size());
    w.commit();
  } catch (const IoError& e) {
    msg = e.what();
  }
  ::setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, previous);
  EXPECT_NE(msg.find("file-size limit (ulimit -f = 64 blocks of 1 KiB"), std::string::npos) << msg;
  EXPECT_NE(msg.find("ulimit -f unlimited"), std::string::npos) << msg;
  EXPECT_TRUE(dir.listing().empty());
}

// ---- config.json -----------------------------------------------------------------

TEST(HfConfig, IsValidJsonWithLlamaKeys) {
  ModelConfig m;
  m.vocab_size = 32000;
  m.hidden_size = 512;
  m.num_hidden_layers = 6;
  m.num_attention_heads = 8;
  m.num_key_value_heads = 2;
  m.intermediate_size = 1376;
  m.layer_pattern = "LLS";
  m.rope_theta = 500000.0;
  m.tie_word_embeddings = true;
  m.linear_attention.decay = "0.99";
  const std::vector<LinearLayerExport> linear = {{0, "silu", 1.0, {0.99f, 0.99f}, true, true},
                                                 {3, "elu1", 0.125, {0.5f, 1.0f}, false, true}};
  const std::string text = hf_llama_config_json(m, 2048, linear);

  // Our parser and the checks we can do here.
  const nlohmann::json v = parse_json(text);
  EXPECT_EQ(v.at("model_type"), "llama");
  EXPECT_EQ(v.at("num_key_value_heads"), 2u);
  EXPECT_EQ(v.at("head_dim"), 64u);
  EXPECT_EQ(v.at("rope_theta").get<double>(), 500000.0);
  EXPECT_EQ(v.at("rms_norm_eps").get<double>(), 1e-5);
  // Floats stay floats in the text, so Python reads rope_theta as a float.
  EXPECT_NE(text.find("\"rope_theta\": 500000.0,"), std::string::npos) << text;
  EXPECT_NE(text.find("\"rms_norm_eps\": 1e-05,"), std::string::npos) << text;
  const nlohmann::json& types = v.at("lintrain").at("layer_types");
  ASSERT_EQ(types.size(), 6u);
  EXPECT_EQ(types[2], "softmax_attention");
  EXPECT_EQ(types[3], "linear_attention");

  if (!python_has("json")) {
    GTEST_SKIP() << "python3 not found";
  }
  TempDir dir;
  write_file_atomic(dir.file("config.json"), text);
  const char* script = R"PY(
import json, sys
c = json.load(open(sys.argv[1]))
assert c["architectures"] == ["LlamaForCausalLM"] and c["model_type"] == "llama"
assert (c["hidden_size"], c["intermediate_size"], c["num_attention_heads"]) == (512, 1376, 8)
assert (c["num_hidden_layers"], c["num_key_value_heads"], c["vocab_size"]) == (6, 2, 32000)
assert c["rms_norm_eps"] == 1e-5 and c["rope_theta"] == 500000.0 and isinstance(c["rope_theta"], float)
assert c["tie_word_embeddings"] is True and c["hidden_act"] == "silu"
assert c["max_position_embeddings"] == 2048 and c["torch_dtype"] == "float32"
la = c["lintrain"]["linear_attention"]
assert c["lintrain"]["layer_pattern"] == "LLS" and la["variant"] == "lightning"
l0, l3 = la["layers"]
assert (l0["layer"], l0["feature_map"], l0["key_scale"], l0["output_norm"], l0["output_gate"]) == (0, "silu", 1.0, True, True)
assert abs(l0["decay"][0] - 0.99) < 1e-7 and len(l0["decay"]) == 2
assert (l3["layer"], l3["feature_map"], l3["key_scale"], l3["decay"], l3["output_norm"]) == (3, "elu1", 0.125, [0.5, 1.0], False)
)PY";
  EXPECT_EQ(run_python(dir, script, dir.file("config.json")), 0);
}
