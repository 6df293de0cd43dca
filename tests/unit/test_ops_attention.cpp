// The attention ops of runtime/ops.h (both attention cores, the five LASP-2
// chunk-boundary terms, the state merges): each op's CUDA body against its
// CPU body on random inputs (normalised error, a per-op tolerance with its
// reason), on shapes that cross the bodies' blocking (GQA, lengths that are
// not a multiple of any block or tile, q_offset > 0, padded row strides, decay
// from 1 down to 1e-20); then the argument checks and the scratch sizing,
// whatever the device. The CPU bodies themselves are checked against float64
// references in test_softmax_attention.cpp, test_linear_attention.cpp and
// test_lasp2_terms.cpp.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "runtime/error.h"
#include "runtime/ops.h"
#include "runtime/rng.h"
#include "tests/unit/ops_backend.h"

using namespace lintrain;
using namespace lintrain::test;

namespace {

using Outputs = std::vector<std::vector<float>>;

// Decays from no decay to one that underflows after a single step.
const std::vector<float> kDecays = {1.0f, 0.99f, 0.5f, 1e-20f};

// Softmax attention shape: 4 query heads on 2 kv heads, 70 queries at
// positions 20..89 of 90 keys (not a multiple of the CUDA tiles of 64 / 32 /
// 16 nor of the CPU's q_block 32), head dim 24, rows padded.
AttentionDims softmax_dims() {
  AttentionDims a;
  a.B = 2;
  a.Tq = 70;
  a.Tk = 90;
  a.H = 4;
  a.KVH = 2;
  a.d = 24;
  a.q_offset = 20;
  a.q_block = 32;
  return a;
}

// Linear attention / LASP-2 chunk shape: 4 query heads on 2 kv heads, 75
// tokens (blocks of 16 with a tail of 11; CUDA tiles of 8 with a tail of 3),
// head dim 16, fused q|k|v rows with one pad column.
LinearAttentionDims linear_dims() {
  const int H = 4, KVH = 2, d = 16, W = (H + 2 * KVH) * d + 1;
  return LinearAttentionDims{2, 75, H, KVH, d, 16, W, W, W, H * d + 3};
}

size_t rows(const LinearAttentionDims& m) { return static_cast<size_t>(m.B) * m.T; }
size_t states(const LinearAttentionDims& m) { return static_cast<size_t>(m.B) * m.H * m.d * m.d; }

// linear_attention forward and backward on `be` from random inputs drawn with
// `seed` (fused q|k|v rows, an initial state and its gradient): o, state_out,
// dq|dk|dv and dstate_in, downloaded.
Outputs linear_attention_outputs(Backend& be, const LinearAttentionDims& m, uint64_t seed) {
  const int Hd = m.H * m.d, KVd = m.KVH * m.d;
  Rng rng(seed);
  const float* qkv = be.upload(randn(rows(m) * m.ldq, rng, 0.5));
  const float *q = qkv, *k = qkv + Hd, *v = qkv + Hd + KVd;
  const float* decay = be.upload(kDecays);
  const float* s_in = be.upload(randn(states(m), rng));
  const float* ds_out = be.upload(randn(states(m), rng));
  const float* dout = be.upload(randn(rows(m) * m.ldo, rng));
  float* o = be.upload(std::vector<float>(rows(m) * m.ldo, 7.0f));
  float* s_out = be.upload(std::vector<float>(states(m)));
  float* dqkv = be.upload(std::vector<float>(rows(m) * m.ldq, 7.0f));
  float* ds_in = be.upload(std::vector<float>(states(m)));
  linear_attention_forward(be.ctx(), o, q, k, v, decay, s_in, s_out, m);
  linear_attention_backward(be.ctx(), dqkv, dqkv + Hd, dqkv + Hd + KVd, ds_in, dout, ds_out, q, k, v, decay, s_in, m);
  return Outputs{be.download(o, rows(m) * m.ldo), be.download(s_out, states(m)), be.download(dqkv, rows(m) * m.ldq),
                 be.download(ds_in, states(m))};
}

}  // namespace

// softmax forward: o and lse are sums over up to 90 keys of fp32 products.
// The CUDA body rescales an online softmax in float where the CPU sums the
// exponentials in double after a row max, and expf differs from std::exp by
// a few ulp: ~1e-6 relative; 1e-5 leaves room. A wrong mask or offset moves
// outputs by O(1).
TEST(OpsCuda, SoftmaxAttentionForwardMatchesCpu) {
  compare_with_cpu("softmax_attention_forward", 1e-5, [](Backend& be) {
    const AttentionDims a = softmax_dims();
    const int ldq = a.H * a.d + 5, ldkv = a.KVH * a.d + 3, ldo = a.H * a.d + 1;
    Rng rng(31);
    const float* q = be.upload(randn(size_t{1} * a.B * a.Tq * ldq, rng, 1.5));
    const float* k = be.upload(randn(size_t{1} * a.B * a.Tk * ldkv, rng, 1.5));
    const float* v = be.upload(randn(size_t{1} * a.B * a.Tk * ldkv, rng));
    const size_t no = size_t{1} * a.B * a.Tq * ldo, nl = size_t{1} * a.B * a.H * a.Tq;
    float* o = be.upload(std::vector<float>(no, 7.0f));
    float* lse = be.upload(std::vector<float>(nl));
    softmax_attention_forward(be.ctx(), a, o, ldo, lse, q, ldq, k, ldkv, v, ldkv);
    return Outputs{be.download(o, no), be.download(lse, nl)};
  });
}

// softmax backward: dq sums over <= 90 keys, dk/dv over <= 2 heads x 70
// queries, each term a product of a recomputed probability and a d = 24 dot
// product, in another order than the CPU's GEMMs: ~1e-6 relative per term
// and up to ~sqrt(140) of them; 5e-5 leaves room, while a missing head of the
// group or a wrong lse gives errors of O(1).
TEST(OpsCuda, SoftmaxAttentionBackwardMatchesCpu) {
  compare_with_cpu("softmax_attention_backward", 5e-5, [](Backend& be) {
    const AttentionDims a = softmax_dims();
    const int ld = a.H * a.d, ldkv = a.KVH * a.d;
    Rng rng(32);
    const size_t nq = size_t{1} * a.B * a.Tq * ld, nk = size_t{1} * a.B * a.Tk * ldkv;
    const float* q = be.upload(randn(nq, rng, 1.5));
    const float* k = be.upload(randn(nk, rng, 1.5));
    const float* v = be.upload(randn(nk, rng));
    const float* dout = be.upload(randn(nq, rng));
    float* o = be.upload(std::vector<float>(nq));
    float* lse = be.upload(std::vector<float>(size_t{1} * a.B * a.H * a.Tq));
    float* dq = be.upload(std::vector<float>(nq, 7.0f));
    float* dk = be.upload(std::vector<float>(nk, 7.0f));
    float* dv = be.upload(std::vector<float>(nk, 7.0f));
    softmax_attention_forward(be.ctx(), a, o, ld, lse, q, ld, k, ldkv, v, ldkv);
    softmax_attention_backward(be.ctx(), a, dq, ld, dk, ldkv, dv, ldkv, dout, ld, q, ld, k, ldkv, v, ldkv, o, ld,
                               lse);
    return Outputs{be.download(dq, nq), be.download(dk, nk), be.download(dv, nk)};
  });
}

// linear attention: the CUDA body runs the token recurrence, the CPU the
// blockwise form; both sum ~T*d = 1200 fp32 products per output in different
// orders (and lambda^n by repeated products instead of exp(n log lambda)):
// ~sqrt(1200) * 6e-8 ~ 2e-6 relative; 2e-5 leaves room. The gradients and
// dstate_in are sums of the same size.
TEST(OpsCuda, LinearAttentionMatchesCpu) {
  compare_with_cpu("linear_attention", 2e-5, [](Backend& be) {
    return linear_attention_outputs(be, linear_dims(), 33);
  });
}

// Long sequences: the CUDA body cuts them into chunks run in parallel, the
// states entering the chunks from a scan (runtime/ops_linear_chunked.cpp).
// B = 1, T = 1024 (16 chunks of 64, none left over) and B = 2, T = 1000 (15
// chunks of 66 and a tail of 10, each sequence on its own), GQA, the decays
// down to 1e-20, state_in / state_out and their gradients. Up to ~T d = 16000
// fp32 products per output, summed in other orders than the CPU's blocks (the
// scan in double): ~sqrt(16000) * 6e-8 ~ 8e-6 relative; 1e-4 leaves room,
// while a chunk that starts from the wrong state is off by O(1).
TEST(OpsCuda, LinearAttentionLongSequencesMatchCpu) {
  for (const auto& [B, T] : {std::pair<int, int>{1, 1024}, {2, 1000}}) {
    compare_with_cpu("linear_attention (chunk-parallel on CUDA)", 1e-4, [B = B, T = T](Backend& be) {
      LinearAttentionDims m = linear_dims();
      m.B = B, m.T = T;
      return linear_attention_outputs(be, m, 39 + T);
    });
  }
}

// The chunk-parallel schedule (what the CUDA op runs on long sequences) on
// the CPU, against the CPU's own blockwise body: the same sums regrouped by
// chunk (the scans in double), so 1e-5 normalised error; a chunk started
// from a wrong state, a misplaced tail or a lost dstate is off by O(1). Chunk
// counts that tile the sequence and ones that leave a tail, B = 1 and 2
// (with a tail each sequence runs on its own), GQA, decays down to 1e-20.
TEST(OpsAttention, ChunkedScheduleMatchesTheBlockwiseBody) {
  Backend be(Device::CPU);
  for (const auto& [B, T] : {std::pair<int, int>{1, 256}, {2, 250}, {2, 256}})
    for (int chunks : {2, 3, 8}) {
      LinearAttentionDims m = linear_dims();
      m.B = B, m.T = T;
      const int Hd = m.H * m.d, KVd = m.KVH * m.d;
      Rng rng(41 + T + chunks);
      const std::vector<float> qkv = randn(rows(m) * m.ldq, rng, 0.5), s_in = randn(states(m), rng);
      const std::vector<float> ds_out = randn(states(m), rng), dout = randn(rows(m) * m.ldo, rng);
      const float *q = qkv.data(), *k = q + Hd, *v = k + KVd;
      Outputs want, got;
      for (int chunked = 0; chunked < 2; ++chunked) {
        std::vector<float> o(rows(m) * m.ldo, 7.0f), s_out(states(m)), dqkv(rows(m) * m.ldq, 7.0f), ds_in(states(m));
        if (chunked) {
          linear_attention_forward_chunked(be.ctx(), chunks, o.data(), q, k, v, kDecays.data(), s_in.data(),
                                           s_out.data(), m);
          linear_attention_backward_chunked(be.ctx(), chunks, dqkv.data(), dqkv.data() + Hd, dqkv.data() + Hd + KVd,
                                            ds_in.data(), dout.data(), ds_out.data(), q, k, v, kDecays.data(),
                                            s_in.data(), m);
        } else {
          linear_attention_forward(be.ctx(), o.data(), q, k, v, kDecays.data(), s_in.data(), s_out.data(), m);
          linear_attention_backward(be.ctx(), dqkv.data(), dqkv.data() + Hd, dqkv.data() + Hd + KVd, ds_in.data(),
                                    dout.data(), ds_out.data(), q, k, v, kDecays.data(), s_in.data(), m);
        }
        (chunked ? got : want) = Outputs{o, s_out, dqkv, ds_in};
      }
      const char* names[] = {"o", "state_out", "dqkv", "dstate_in"};
      for (size_t i = 0; i < want.size(); ++i)
        EXPECT_LT(normalised_error(got[i], want[i]), 1e-5)
            << names[i] << ", B=" << B << " T=" << T << " chunks=" << chunks;
    }
  EXPECT_EQ(linear_attention_chunk_count(Device::CPU, linear_dims()), 1);
  LinearAttentionDims longer = linear_dims();
  longer.B = 1, longer.H = 16, longer.T = 65536;
  EXPECT_EQ(linear_attention_chunk_count(Device::CUDA, longer), 128);  // 16 heads x 128 chunks = 2048 blocks
  longer.T = 100;
  EXPECT_EQ(linear_attention_chunk_count(Device::CUDA, longer), 1);  // chunks of 64 or more only
}

// LASP-2 terms: each output is a dot product over d = 16 (o, dq, dk, dv; dk/dv
// over both heads of a group) or over the chunk's 75 tokens (M, dP), with the
// same fp32 decay powers, in another order than the CPU's GEMMs: ~sqrt(75) *
// 6e-8 ~ 5e-7 relative; 5e-6 leaves room, while a power off by one lambda
// changes results by >= 1 - 0.99 = 1e-2.
TEST(OpsCuda, Lasp2TermsMatchCpu) {
  compare_with_cpu("lasp2_terms", 5e-6, [](Backend& be) {
    const LinearAttentionDims m = linear_dims();
    const int Hd = m.H * m.d, KVd = m.KVH * m.d;
    Rng rng(34);
    const float* qkv = be.upload(randn(rows(m) * m.ldq, rng));
    const float *q = qkv, *k = qkv + Hd, *v = qkv + Hd + KVd;
    const float* decay = be.upload(kDecays);
    const float* P = be.upload(randn(states(m), rng));
    const float* G = be.upload(randn(states(m), rng));
    const float* dout = be.upload(randn(rows(m) * m.ldo, rng));
    float* M = be.upload(std::vector<float>(states(m), 7.0f));
    float* dP = be.upload(std::vector<float>(states(m), 7.0f));
    float* o = be.upload(randn(rows(m) * m.ldo, rng));      // accumulated into
    float* dqkv = be.upload(randn(rows(m) * m.ldq, rng));   // accumulated into
    lasp2_chunk_state(be.ctx(), M, k, v, decay, m);
    lasp2_prefix_state_grad(be.ctx(), dP, q, dout, decay, m);
    lasp2_add_prefix_output(be.ctx(), o, q, P, decay, m);
    lasp2_add_prefix_dq(be.ctx(), dqkv, dout, P, decay, m);
    lasp2_add_suffix_dkdv(be.ctx(), dqkv + Hd, dqkv + Hd + KVd, k, v, G, decay, m);
    return Outputs{be.download(M, states(m)), be.download(dP, states(m)), be.download(o, rows(m) * m.ldo),
                   be.download(dqkv, rows(m) * m.ldq)};
  });
}

// merges: both bodies sum the same W terms in double in the same order; only
// exp/log of the weights may differ by an ulp of a double, so the fp32
// results differ by at most one rounding step: 2^-23 ~ 1.2e-7 relative.
TEST(OpsCuda, Lasp2MergesMatchCpu) {
  compare_with_cpu("lasp2_merge_states", 2.5e-7, [](Backend& be) {
    const int W = 5, B = 2, H = 4, d = 16, C = 40;
    Rng rng(35);
    const size_t n = size_t{1} * B * H * d * d;
    const float* gathered = be.upload(randn(W * n, rng));
    const float* decay = be.upload(kDecays);
    Outputs out;
    for (int j : {0, 2, 4}) {
      float* P = be.upload(std::vector<float>(n, 7.0f));
      float* G = be.upload(std::vector<float>(n, 7.0f));
      lasp2_prefix_states(be.ctx(), P, gathered, W, j, B, H, d, C, decay);
      lasp2_suffix_states(be.ctx(), G, gathered, W, j, B, H, d, C, decay);
      out.push_back(be.download(P, n));
      out.push_back(be.download(G, n));
    }
    return out;
  });
}

// ---- argument checks and scratch, whatever the device (shown on the CPU) ------

namespace {

// The message of the Error that `call` throws ("" if none).
template <typename Call>
std::string error_of(Call call) {
  try {
    call();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(OpsAttention, ArgumentErrorsNameTheOp) {
  Backend be(Device::CPU);
  std::vector<float> buf(1 << 16, 0.0f);
  float* p = buf.data();
  const std::vector<float> decay = kDecays;

  AttentionDims a = softmax_dims();
  a.Tk = 80;  // < q_offset + Tq = 90
  EXPECT_NE(error_of([&] { softmax_attention_forward(be.ctx(), a, p, 96, p, p, 96, p, 48, p, 48); })
                .find("[softmax_attention_forward] queries at positions [20, 90) need keys up to there, but Tk=80"),
            std::string::npos);
  a = softmax_dims();
  EXPECT_NE(error_of([&] {
              softmax_attention_backward(be.ctx(), a, p, 96, p, 40, p, 48, p, 96, p, 96, p, 48, p, 48, p, 96, p);
            }).find("[softmax_attention_backward] dk/dv row strides (40, 48) must be >= KVH*d = 48"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              softmax_attention_backward(be.ctx(), a, p, 96, p, 48, p, 48, nullptr, 96, p, 96, p, 48, p, 48, p, 96,
                                         p);
            }).find("[softmax_attention_backward] pointer argument"),
            std::string::npos);

  LinearAttentionDims m = linear_dims();
  const std::vector<float> bad_decay = {1.0f, 1.5f, 0.5f, 0.5f};
  EXPECT_NE(error_of([&] { linear_attention_forward(be.ctx(), p, p, p, p, bad_decay.data(), nullptr, nullptr, m); })
                .find("[linear_attention_forward] decay[1]=1.5 must be in (0, 1]"),
            std::string::npos);
  m.KVH = 3;
  EXPECT_NE(error_of([&] {
              linear_attention_backward(be.ctx(), p, p, p, nullptr, p, nullptr, p, p, p, decay.data(), nullptr, m);
            }).find("[linear_attention_backward] need H >= 1, KVH >= 1 and H % KVH == 0, got H=4 KVH=3"),
            std::string::npos);
  m = linear_dims();
  m.ldk = m.KVH * m.d - 1;
  EXPECT_NE(error_of([&] { lasp2_add_prefix_dq(be.ctx(), p, p, p, decay.data(), m); })
                .find("[lasp2_add_prefix_dq] row strides"),
            std::string::npos);
  m = linear_dims();
  EXPECT_NE(error_of([&] { lasp2_chunk_state(be.ctx(), p, p, p, nullptr, m); })
                .find("[lasp2_chunk_state] decay is null"),
            std::string::npos);
  EXPECT_NE(error_of([&] { lasp2_prefix_states(be.ctx(), p, p, 4, 4, 1, 4, 4, 8, decay.data()); })
                .find("[lasp2_prefix_states] rank j=4 outside [0, W=4)"),
            std::string::npos);
  Context no_arena;
  EXPECT_NE(error_of([&] { lasp2_suffix_states(no_arena, p, p, 4, 1, 1, 4, 4, 8, decay.data()); })
                .find("[lasp2_suffix_states] needs a scratch arena"),
            std::string::npos);
}

// Each op takes exactly its *_scratch_bytes (for this thread count), refuses
// to run on less, and gives it all back.
TEST(OpsAttention, ScratchIsWhatTheOpsSay) {
  const LinearAttentionDims m = linear_dims();
  const AttentionDims a = softmax_dims();
  const int Hd = m.H * m.d, KVd = m.KVH * m.d, ld = a.H * a.d, ldkv = a.KVH * a.d;
  Rng rng(36);
  const std::vector<float> qkv = randn(rows(m) * m.ldq, rng), decay = kDecays;
  const std::vector<float> sq = randn(size_t{1} * a.B * a.Tq * ld, rng);
  const std::vector<float> skv = randn(size_t{1} * a.B * a.Tk * ldkv, rng);
  std::vector<float> out(rows(m) * m.ldq), dout = randn(rows(m) * m.ldq, rng), st(states(m)), lse(a.B * a.H * a.Tq);
  std::vector<float> o(sq.size()), dq(sq.size()), dk(skv.size()), dv(skv.size());
  const float *q = qkv.data(), *k = q + Hd, *v = k + KVd;
  struct Case {
    const char* op;
    size_t bytes;
    std::function<void(const Context&)> run;
  };
  const std::vector<Case> cases = {
      {"linear_attention_forward", linear_attention_forward_scratch_bytes(Device::CPU, m),
       [&](const Context& c) { linear_attention_forward(c, out.data(), q, k, v, decay.data(), nullptr, nullptr, m); }},
      {"linear_attention_backward", linear_attention_backward_scratch_bytes(Device::CPU, m),
       [&](const Context& c) {
         linear_attention_backward(c, out.data(), out.data() + Hd, out.data() + Hd + KVd, nullptr, dout.data(),
                                   nullptr, q, k, v, decay.data(), nullptr, m);
       }},
      {"lasp2_add_suffix_dkdv", lasp2_terms_scratch_bytes(Device::CPU, m),
       [&](const Context& c) {
         lasp2_add_suffix_dkdv(c, out.data() + Hd, out.data() + Hd + KVd, k, v, st.data(), decay.data(), m);
       }},
      {"lasp2_prefix_states", lasp2_merge_states_scratch_bytes(Device::CPU, m.B, m.H, m.d),
       [&](const Context& c) {
         std::vector<float> gathered(3 * states(m), 1.0f);
         lasp2_prefix_states(c, st.data(), gathered.data(), 3, 2, m.B, m.H, m.d, m.T, decay.data());
       }},
      {"softmax_attention_forward", softmax_attention_forward_scratch_bytes(Device::CPU, a),
       [&](const Context& c) {
         softmax_attention_forward(c, a, o.data(), ld, lse.data(), sq.data(), ld, skv.data(), ldkv, skv.data(), ldkv);
       }},
      {"softmax_attention_backward", softmax_attention_backward_scratch_bytes(Device::CPU, a),
       [&](const Context& c) {
         softmax_attention_backward(c, a, dq.data(), ld, dk.data(), ldkv, dv.data(), ldkv, sq.data(), ld, sq.data(),
                                    ld, skv.data(), ldkv, skv.data(), ldkv, o.data(), ld, lse.data());
       }},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.op);
    ASSERT_GT(c.bytes, kArenaAlign);
    Arena small;
    small.reserve(c.bytes - kArenaAlign);
    Context ctx;
    ctx.scratch = &small;
    EXPECT_NE(error_of([&] { c.run(ctx); }).find(std::string("[") + c.op + "] needs"), std::string::npos);
    Arena exact;
    exact.reserve(c.bytes);
    ctx.scratch = &exact;
    c.run(ctx);
    EXPECT_EQ(exact.used(), 0u) << "an op must give its scratch back";
    EXPECT_EQ(exact.high_water(), c.bytes);
  }
}

// A CPU-only build links runtime/no_cuda: an attention op on a CUDA context
// names itself.
TEST(OpsAttention, WithoutCudaAnOpOnACudaContextSaysSo) {
  if (LINTRAIN_HAS_CUDA) GTEST_SKIP() << "built with CUDA: the no_cuda bodies are not linked";
  Arena arena(Device::CUDA);  // never reserved: nothing is allocated
  Context ctx;
  ctx.device = Device::CUDA;
  ctx.scratch = &arena;
  std::vector<float> buf(1 << 12);
  float* p = buf.data();
  const LinearAttentionDims m = linear_dims();
  EXPECT_EQ(error_of([&] { linear_attention_forward(ctx, p, p, p, p, p, nullptr, nullptr, m); }),
            "[linear_attention_forward] has no CUDA implementation (built without CUDA)");
  EXPECT_EQ(error_of([&] { lasp2_suffix_states(ctx, p, p, 2, 0, 1, 4, 4, 8, p); }),
            "[lasp2_suffix_states] has no CUDA implementation (built without CUDA)");
}
