// The FP8 ops' CUDA bodies against their CPU bodies, bit for bit: codes,
// counts, decoded values, amax, blockwise scales (both backends share
// runtime/fp8_math.h; this checks the kernels' indexing, reductions and
// atomics). Without a GPU (or built without CUDA) it skips, saying so. The
// CPU bodies themselves are checked against float64 references in
// test_fp8_math.cpp. (A test_ops* file: scripts/gpu_check.sh runs it.)
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "runtime/device.h"
#include "runtime/fp8_math.h"
#include "runtime/ops.h"
#include "runtime/rng.h"
#include "runtime/tensor.h"
#include "tests/unit/fp8_reference.h"
#include "tests/unit/ops_backend.h"

using namespace lintrain;
using namespace lintrain::test;

namespace {

constexpr Fp8Format kFormats[] = {Fp8Format::E4M3, Fp8Format::E5M2};

int64_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
}  // namespace

namespace {

// uint8 buffers on a backend's device (ops_backend.h's Backend holds f32/i32/i64).
struct Bytes {
  Tensor t;
  uint8_t* p() const { return static_cast<uint8_t*>(t.raw()); }
};
Bytes device_bytes(Device d, size_t n) { return {Tensor::zeros({static_cast<int64_t>(std::max<size_t>(n, 1))}, DType::F8E4M3, d)}; }
std::vector<uint8_t> download_bytes(Device d, const Bytes& b, size_t n) {
  std::vector<uint8_t> v(n);
  copy_to_host(d, v.data(), b.p(), n);
  return v;
}

// Every FP8 op on one backend, its outputs as raw words (codes widened,
// floats by their bits), so the comparison is bit for bit.
std::vector<std::vector<int64_t>> run_fp8_ops(Backend& be) {
  const Device d = be.ctx().device;
  std::vector<std::vector<int64_t>> outs;
  auto add_floats = [&](const float* p, size_t n) {
    std::vector<int64_t> w;
    for (float v : be.download(p, n)) w.push_back(bits(v));
    outs.push_back(w);
  };
  auto add_codes = [&](const Bytes& b, size_t n) {
    const std::vector<uint8_t> c = download_bytes(d, b, n);
    outs.emplace_back(c.begin(), c.end());
  };
  for (Fp8Format f : kFormats) {
    std::vector<float> xs = fp8_boundary_inputs(f);
    const std::vector<float> r = fp8_random_floats(1 << 20, f, 77);
    xs.insert(xs.end(), r.begin(), r.end());
    const int64_t n = static_cast<int64_t>(xs.size());
    const float* x = be.upload(xs);
    for (bool sat : {true, false}) {
      Bytes codes = device_bytes(d, xs.size());
      int64_t* counts = be.upload(std::vector<int64_t>(3, 0));
      fp8_encode(be.ctx(), codes.p(), x, n, 2.5f, f, sat, reinterpret_cast<Fp8Counts*>(counts));
      add_codes(codes, xs.size());
      outs.push_back(be.download(counts, 3));
    }
    Bytes every = device_bytes(d, 256);
    std::vector<uint8_t> host_codes(256);
    for (int c = 0; c < 256; ++c) host_codes[c] = static_cast<uint8_t>(c);
    copy_from_host(d, every.p(), host_codes.data(), 256);
    float* dec = be.upload(std::vector<float>(256));
    fp8_decode(be.ctx(), dec, every.p(), 256, 0.37f, f);
    add_floats(dec, 256);
    const Fp8Amax a = fp8_amax(be.ctx(), x, n);
    outs.push_back({bits(a.amax), a.nonfinite});
    // Blockwise on a matrix with edge tiles both ways.
    const int rows = 300, cols = 520;
    Rng rng(78);
    std::vector<float> m(static_cast<size_t>(rows) * cols);
    for (auto& v : m) v = static_cast<float>(rng.normal() * std::exp2(20 * rng.uniform() - 10));
    m[1000] = NAN;
    const float* md = be.upload(m);
    for (auto tile : {std::pair<int, int>{1, 128}, {128, 128}}) {
      const int64_t ns = fp8_blockwise_scale_count(rows, cols, tile.first, tile.second);
      Bytes q = device_bytes(d, m.size());
      float* sinv = be.upload(std::vector<float>(static_cast<size_t>(ns)));
      float* back = be.upload(std::vector<float>(m.size()));
      int64_t* counts = be.upload(std::vector<int64_t>(3, 0));
      fp8_quantize_blockwise(be.ctx(), q.p(), sinv, md, rows, cols, tile.first, tile.second, f,
                             reinterpret_cast<Fp8Counts*>(counts));
      fp8_dequantize_blockwise(be.ctx(), back, q.p(), sinv, rows, cols, tile.first, tile.second, f);
      add_codes(q, m.size());
      add_floats(sinv, static_cast<size_t>(ns));
      add_floats(back, m.size());
      outs.push_back(be.download(counts, 3));
    }
  }
  return outs;
}

}  // namespace

// The CUDA bodies give the CPU bodies' bits: codes, counts, decoded values,
// amax, blockwise scales (both share runtime/fp8_math.h; this checks the
// kernels' indexing, reductions and atomics).
TEST(Fp8OpsCuda, BodiesMatchCpuBitForBit) {
  if (!LINTRAIN_HAS_CUDA) GTEST_SKIP() << "built without CUDA: the FP8 ops run on the CPU only";
  if (!cuda_available()) GTEST_SKIP() << "no CUDA GPU on this machine: the FP8 CUDA bodies are not exercised";
  Backend cpu(Device::CPU), gpu(Device::CUDA);
  const auto want = run_fp8_ops(cpu), got = run_fp8_ops(gpu);
  ASSERT_EQ(want.size(), got.size());
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_EQ(want[i].size(), got[i].size()) << "output " << i;
    size_t bad = 0, first = 0;
    for (size_t j = 0; j < want[i].size(); ++j)
      if (want[i][j] != got[i][j] && bad++ == 0) first = j;
    EXPECT_EQ(bad, 0u) << "output " << i << ": first difference at " << first << " cpu " << want[i][first]
                       << " cuda " << got[i][first];
  }
}
