// The optimizer ops of runtime/ops.h (updates, gradient norm, clipping,
// FRUGAL's gathers and scatters), three ways:
//   - each op's CPU body against the loop optim/ had before the ops existed,
//     copied here as the reference: bit for bit (the training runs' losses
//     must not move);
//   - each op's CUDA body against its CPU body on random inputs, within a
//     per-op tolerance (normalised error, max |a - b| / max |b|); skipped,
//     saying so, without a GPU;
//   - the argument checks, which name the op.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "runtime/device.h"
#include "runtime/error.h"
#include "runtime/ops.h"
#include "runtime/rng.h"
#include "tests/unit/ops_backend.h"

using namespace lintrain;
using namespace lintrain::test;

namespace {

// Second moments: non-negative.
std::vector<float> rand_sq(size_t n, Rng& rng, double scale = 1.0) {
  std::vector<float> v = randn(n, rng, scale);
  for (auto& x : v) x = x * x;
  return v;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Not a multiple of any vector width or of the 256-thread block; the grad
// norm's size crosses three of its 2^16 chunks.
constexpr int64_t kN = 100003;
constexpr int64_t kNormN = 3 * kGradNormChunk + 12345;

// The coefficients of step 3 of an AdamW with lr 1e-3, wd 0.1, betas (0.9, 0.999).
AdamStep adamw_step3() {
  const double b1 = 0.9, b2 = 0.999, lr = 1e-3, t = 3;
  AdamStep s;
  s.b1 = static_cast<float>(b1);
  s.b2 = static_cast<float>(b2);
  s.c1 = static_cast<float>(1.0 - b1);
  s.c2 = static_cast<float>(1.0 - b2);
  s.eps = 1e-8f;
  s.step_size = static_cast<float>(lr / (1.0 - std::pow(b1, t)));
  s.inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(1.0 - std::pow(b2, t)));
  s.decay = static_cast<float>(1.0 - lr * 0.1);
  return s;
}

SpamStep spam_step(bool clip) {
  SpamStep s;
  s.b1 = 0.9f, s.b2 = 0.999f;
  s.c1 = static_cast<float>(1.0 - 0.9), s.c2 = static_cast<float>(1.0 - 0.999);
  s.eps = 1e-6f;
  s.theta = 2.0f;  // low, so many entries clip
  s.step = 3.7e-4f;
  s.decay = 0.9999f;
  s.clip = clip;
  return s;
}

// A random SPAM mask over numel entries with `keep` of them set, as f32 words.
std::vector<float> random_mask(int64_t numel, int64_t keep, Rng& rng) {
  std::vector<uint32_t> bits(static_cast<size_t>((numel + kSpamMaskBits - 1) / kSpamMaskBits), 0);
  int64_t set = 0;
  while (set < keep) {
    const int64_t i = static_cast<int64_t>(rng.below(static_cast<uint64_t>(numel)));
    uint32_t& w = bits[static_cast<size_t>(i / kSpamMaskBits)];
    const uint32_t b = 1u << (i % kSpamMaskBits);
    if (!(w & b)) w |= b, ++set;
  }
  return std::vector<float>(bits.begin(), bits.end());
}

// Sorted distinct indices in [0, n), as floats (FRUGAL randk).
std::vector<float> random_indices(int64_t n, int64_t r, Rng& rng) {
  std::vector<int64_t> all(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) all[static_cast<size_t>(i)] = i;
  for (int64_t i = 0; i < r; ++i)
    std::swap(all[static_cast<size_t>(i)], all[static_cast<size_t>(i + static_cast<int64_t>(rng.below(n - i)))]);
  std::sort(all.begin(), all.begin() + r);
  return std::vector<float>(all.begin(), all.begin() + r);
}

}  // namespace

// ---- the CPU bodies against the loops they replace (bit for bit) ----------------------

// AdamW (optim/adamw.cpp before the ops): the decayed parameter and the
// bias-corrected step.
TEST(OptimOpsCpu, AdamParamIsTheAdamWLoop) {
  Rng rng(1);
  const auto g = randn(kN, rng), m0 = randn(kN, rng, 0.1), v0 = rand_sq(kN, rng, 0.1), p0 = randn(kN, rng);
  const AdamStep s = adamw_step3();
  std::vector<float> p = p0, m = m0, v = v0;
  {
    const float b1 = s.b1, b2 = s.b2, c1 = s.c1, c2 = s.c2, step_size = s.step_size, inv_sqrt_bc2 = s.inv_sqrt_bc2,
                eps = s.eps, decay = s.decay;
    for (int64_t i = 0; i < kN; ++i) {
      m[i] = b1 * m[i] + c1 * g[i];
      v[i] = b2 * v[i] + c2 * g[i] * g[i];
      p[i] = p[i] * decay - step_size * m[i] / (std::sqrt(v[i]) * inv_sqrt_bc2 + eps);
    }
  }
  std::vector<float> po = p0, mo = m0, vo = v0;
  adam_update(Context{}, po.data(), mo.data(), vo.data(), g.data(), kN, s, AdamTarget::Param);
  EXPECT_TRUE(same_bits(po, p) && same_bits(mo, m) && same_bits(vo, v));
}

// GaLore (optim/galore.cpp): c = 1 - b rounded in f32, the bare direction
// m / (sqrt(v) + eps) in place of the projected gradient R.
TEST(OptimOpsCpu, AdamDirectionIsTheGaloreLoop) {
  Rng rng(2);
  const auto r0 = randn(kN, rng), m0 = randn(kN, rng, 0.1), v0 = rand_sq(kN, rng, 0.1);
  const float b1 = 0.9f, b2 = 0.999f, eps = 1e-6f;
  std::vector<float> R = r0, M = m0, V = v0;
  for (int64_t i = 0; i < kN; ++i) {
    M[i] = b1 * M[i] + (1.0f - b1) * R[i];
    V[i] = b2 * V[i] + (1.0f - b2) * R[i] * R[i];
    R[i] = M[i] / (std::sqrt(V[i]) + eps);
  }
  AdamStep s;
  s.b1 = b1, s.b2 = b2, s.c1 = 1.0f - b1, s.c2 = 1.0f - b2, s.eps = eps;
  std::vector<float> Ro = r0, Mo = m0, Vo = v0;
  adam_update(Context{}, Ro.data(), Mo.data(), Vo.data(), Ro.data(), kN, s, AdamTarget::Direction);
  EXPECT_TRUE(same_bits(Ro, R) && same_bits(Mo, M) && same_bits(Vo, V));
}

// FRUGAL (optim/frugal.cpp): the bias-corrected step in coordinates, and
// blockwise AdamW on a whole tensor, both with c = 1 - b rounded in f32.
TEST(OptimOpsCpu, AdamIsBothFrugalLoops) {
  Rng rng(3);
  const auto r0 = randn(kN, rng), m0 = randn(kN, rng, 0.1), v0 = rand_sq(kN, rng, 0.1), p0 = randn(kN, rng);
  AdamStep s = adamw_step3();
  s.c1 = 1.0f - s.b1, s.c2 = 1.0f - s.b2;
  const float b1 = s.b1, b2 = s.b2, step_size = s.step_size, inv_sqrt_bc2 = s.inv_sqrt_bc2, eps = s.eps,
              decay = s.decay;
  std::vector<float> R = r0, M = m0, V = v0;  // step_projected
  for (int64_t i = 0; i < kN; ++i) {
    M[i] = b1 * M[i] + (1.0f - b1) * R[i];
    V[i] = b2 * V[i] + (1.0f - b2) * R[i] * R[i];
    R[i] = step_size * M[i] / (std::sqrt(V[i]) * inv_sqrt_bc2 + eps);
  }
  std::vector<float> Ro = r0, Mo = m0, Vo = v0;
  adam_update(Context{}, Ro.data(), Mo.data(), Vo.data(), Ro.data(), kN, s, AdamTarget::Direction);
  EXPECT_TRUE(same_bits(Ro, R) && same_bits(Mo, M) && same_bits(Vo, V)) << "projected";

  std::vector<float> p = p0, m = m0, w = v0;  // step_blockwise, g = r0
  const std::vector<float>& g = r0;
  for (int64_t i = 0; i < kN; ++i) {
    m[i] = b1 * m[i] + (1.0f - b1) * g[i];
    w[i] = b2 * w[i] + (1.0f - b2) * g[i] * g[i];
    p[i] = p[i] * decay - step_size * m[i] / (std::sqrt(w[i]) * inv_sqrt_bc2 + eps);
  }
  std::vector<float> po = p0, mo = m0, wo = v0;
  adam_update(Context{}, po.data(), mo.data(), wo.data(), g.data(), kN, s, AdamTarget::Param);
  EXPECT_TRUE(same_bits(po, p) && same_bits(mo, m) && same_bits(wo, w)) << "blockwise";
}

TEST(OptimOpsCpu, LionIsTheLionLoop) {
  Rng rng(4);
  auto g = randn(kN, rng);
  const auto m0 = randn(kN, rng, 0.1), p0 = randn(kN, rng);
  for (int64_t i = 0; i < kN; i += 97) g[i] = 0.0f;  // some c = 0 (sign 0) where m is 0 too
  std::vector<float> m00 = m0;
  for (int64_t i = 0; i < kN; i += 97) m00[i] = 0.0f;
  LionStep s;
  s.b1 = 0.9f, s.b2 = 0.99f, s.c1 = static_cast<float>(1.0 - 0.9), s.c2 = static_cast<float>(1.0 - 0.99);
  s.lr = 1e-4f, s.decay = static_cast<float>(1.0 - 1e-4 * 0.1);
  std::vector<float> p = p0, m = m00;
  const float b1 = s.b1, b2 = s.b2, c1 = s.c1, c2 = s.c2, step = s.lr, decay = s.decay;
  for (int64_t i = 0; i < kN; ++i) {
    const float c = b1 * m[i] + c1 * g[i];
    const float sign = static_cast<float>(c > 0.0f) - static_cast<float>(c < 0.0f);
    p[i] = p[i] * decay - step * sign;
    m[i] = b2 * m[i] + c2 * g[i];
  }
  std::vector<float> po = p0, mo = m00;
  lion_update(Context{}, po.data(), mo.data(), g.data(), kN, s);
  EXPECT_TRUE(same_bits(po, p) && same_bits(mo, m));
}

namespace {
// SPAM's update_element (optim/spam.cpp before the ops).
void old_spam_element(float& p, float g, float& m, float& v, const SpamStep& c) {
  if (c.clip) {
    const float limit_sq = c.theta * v;
    g = g * g > limit_sq ? std::copysign(std::sqrt(limit_sq), g) : g;
  }
  m = c.b1 * m + c.c1 * g;
  v = c.b2 * v + c.c2 * g * g;
  p = (p - c.step * m / (std::sqrt(v) + c.eps)) * c.decay;
}
}  // namespace

TEST(OptimOpsCpu, SpamDenseIsTheSpamLoop) {
  for (bool clip : {false, true}) {
    Rng rng(5);
    const auto g = randn(kN, rng), m0 = randn(kN, rng, 0.1), v0 = rand_sq(kN, rng, 0.5), p0 = randn(kN, rng);
    const SpamStep s = spam_step(clip);
    std::vector<float> p = p0, m = m0, v = v0;
    for (int64_t i = 0; i < kN; ++i) old_spam_element(p[i], g[i], m[i], v[i], s);
    std::vector<float> po = p0, mo = m0, vo = v0;
    spam_update(Context{}, po.data(), mo.data(), vo.data(), g.data(), kN, s);
    EXPECT_TRUE(same_bits(po, p) && same_bits(mo, m) && same_bits(vo, v)) << "clip " << clip;
  }
}

// The sparse update walks the set entries in order, entry i owning the k-th
// moment: the reference is that walk written plainly, one word at a time.
TEST(OptimOpsCpu, SpamSparseIsTheMaskWalk) {
  Rng rng(6);
  const int64_t numel = 40000 * kSpamMaskBits + 7, keep = numel / 3;  // 40001 words: 40 chunks
  const auto mask = random_mask(numel, keep, rng);
  const int64_t words = static_cast<int64_t>(mask.size());
  const auto g = randn(numel, rng), p0 = randn(numel, rng), m0 = randn(keep, rng, 0.1), v0 = rand_sq(keep, rng);
  const SpamStep s = spam_step(true);
  std::vector<float> p = p0, m = m0, v = v0;
  int64_t k = 0;
  for (int64_t w = 0; w < words; ++w)
    for (int b = 0; b < kSpamMaskBits; ++b)
      if (static_cast<uint32_t>(mask[w]) & (1u << b)) {
        const int64_t i = w * kSpamMaskBits + b;
        old_spam_element(p[i], g[i], m[k], v[k], s);
        ++k;
      }
  ASSERT_EQ(k, keep);
  std::vector<int64_t> chunk_start(static_cast<size_t>(spam_mask_chunks(words)) + 1);
  const SpamMaskCount count = spam_mask_offsets(Context{}, chunk_start.data(), mask.data(), words, numel);
  EXPECT_EQ(count.entries, keep);
  EXPECT_EQ(count.invalid_words, 0);
  std::vector<float> po = p0, mo = m0, vo = v0;
  spam_sparse_update(Context{}, po.data(), mo.data(), vo.data(), g.data(), mask.data(), words, chunk_start.data(), s);
  EXPECT_TRUE(same_bits(po, p) && same_bits(mo, m) && same_bits(vo, v));
}

TEST(OptimOpsCpu, SpamMaskOffsetsCountInvalidWords) {
  const int64_t numel = 3 * kSpamMaskBits + 5;  // the last word may use 5 bits
  std::vector<float> mask = {3.0f, 65535.0f, 0.0f, 31.0f};
  std::vector<int64_t> chunk_start(2);
  SpamMaskCount c = spam_mask_offsets(Context{}, chunk_start.data(), mask.data(), 4, numel);
  EXPECT_EQ(c.entries, 2 + 16 + 0 + 5);
  EXPECT_EQ(c.invalid_words, 0);
  EXPECT_EQ(chunk_start[1], c.entries);
  mask = {3.5f, -1.0f, 70000.0f, 32.0f};  // not an integer, negative, too large, a bit beyond numel
  c = spam_mask_offsets(Context{}, chunk_start.data(), mask.data(), 4, numel);
  EXPECT_EQ(c.invalid_words, 4);
  EXPECT_EQ(c.entries, 0);
}

// FRUGAL's state-free loops, clipping's scale and the residual/lift subtractions.
TEST(OptimOpsCpu, ElementwiseOpsAreTheirLoops) {
  Rng rng(7);
  auto d = randn(kN, rng);
  for (int64_t i = 0; i < kN; i += 101) d[i] = 0.0f;
  const auto p0 = randn(kN, rng), b = randn(kN, rng);
  const float decay = 0.9999f, lr_free = 3e-4f, s = 0.37f;
  auto sign_of = [](float x) { return static_cast<float>((x > 0.0f) - (x < 0.0f)); };
  std::vector<float> p = p0, po = p0;
  for (int64_t i = 0; i < kN; ++i) p[i] = p[i] * decay - lr_free * sign_of(d[i]);
  sgd_update(Context{}, po.data(), d.data(), kN, decay, lr_free, SgdDirection::Sign);
  EXPECT_TRUE(same_bits(po, p)) << "sign-SGD";
  p = p0, po = p0;
  for (int64_t i = 0; i < kN; ++i) p[i] = p[i] * decay - lr_free * d[i];
  sgd_update(Context{}, po.data(), d.data(), kN, decay, lr_free, SgdDirection::Plain);
  EXPECT_TRUE(same_bits(po, p)) << "SGD";
  p = p0, po = p0;
  for (int64_t i = 0; i < kN; ++i) p[i] *= s;
  scale(Context{}, po.data(), kN, s);
  EXPECT_TRUE(same_bits(po, p)) << "scale";
  p = b, po = b;  // free = g - free, in place of free
  for (int64_t i = 0; i < kN; ++i) p[i] = p0[i] - p[i];
  subtract(Context{}, po.data(), p0.data(), po.data(), kN);
  EXPECT_TRUE(same_bits(po, p)) << "subtract into b";
  p = p0, po = p0;  // p -= F
  for (int64_t i = 0; i < kN; ++i) p[i] -= b[i];
  subtract(Context{}, po.data(), po.data(), b.data(), kN);
  EXPECT_TRUE(same_bits(po, p)) << "subtract into a";
}

TEST(OptimOpsCpu, IndexGatherAndScatterAreTheRandkLoops) {
  Rng rng(8);
  const int64_t m = 123, n = 77, r = 19;
  const auto in = randn(static_cast<size_t>(m * n), rng);
  // Columns (m >= n): coords (m, r).
  const auto cols = random_indices(n, r, rng);
  std::vector<float> want(static_cast<size_t>(m * r)), got(want.size());
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < r; ++j) want[i * r + j] = in[i * n + static_cast<int64_t>(cols[j])];
  index_gather(Context{}, got.data(), in.data(), cols.data(), m, n, r, IndexAxis::Columns);
  EXPECT_TRUE(same_bits(got, want)) << "gather columns";
  std::vector<float> full_want(static_cast<size_t>(m * n), 0.0f), full_got(full_want.size(), 5.0f);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < r; ++j) full_want[i * n + static_cast<int64_t>(cols[j])] = want[i * r + j];
  index_scatter(Context{}, full_got.data(), want.data(), cols.data(), m, n, r, IndexAxis::Columns);
  EXPECT_TRUE(same_bits(full_got, full_want)) << "scatter columns";
  // Rows (m < n in FRUGAL; any shape here): coords (r, n).
  const auto rows = random_indices(m, r, rng);
  want.assign(static_cast<size_t>(r * n), 0.0f), got.assign(want.size(), 0.0f);
  for (int64_t j = 0; j < r; ++j)
    std::memcpy(want.data() + j * n, in.data() + static_cast<int64_t>(rows[j]) * n, sizeof(float) * n);
  index_gather(Context{}, got.data(), in.data(), rows.data(), m, n, r, IndexAxis::Rows);
  EXPECT_TRUE(same_bits(got, want)) << "gather rows";
  full_want.assign(static_cast<size_t>(m * n), 0.0f), full_got.assign(full_want.size(), 5.0f);
  for (int64_t j = 0; j < r; ++j)
    std::memcpy(full_want.data() + static_cast<int64_t>(rows[j]) * n, want.data() + j * n, sizeof(float) * n);
  index_scatter(Context{}, full_got.data(), want.data(), rows.data(), m, n, r, IndexAxis::Rows);
  EXPECT_TRUE(same_bits(full_got, full_want)) << "scatter rows";
}

// optim/optimizer.cpp's grad_global_norm before the sqrt: chunks of 2^16 in
// double, the chunk sums in order.
TEST(OptimOpsCpu, GradNormSquaredIsTheFixedChunkSum) {
  Rng rng(9);
  const auto g = randn(kNormN, rng, 3.0);
  std::vector<double> partial;
  for (int64_t c = 0; c * kGradNormChunk < kNormN; ++c) {
    double s = 0.0;
    for (int64_t i = c * kGradNormChunk; i < std::min(kNormN, (c + 1) * kGradNormChunk); ++i)
      s += static_cast<double>(g[i]) * g[i];
    partial.push_back(s);
  }
  double want = 0.0;
  for (double s : partial) want += s;
  Backend be(Device::CPU);
  const double got = grad_norm_squared(be.ctx(), g.data(), kNormN);
  EXPECT_EQ(std::memcmp(&got, &want, sizeof got), 0) << got << " vs " << want;
  EXPECT_EQ(grad_norm_squared(be.ctx(), g.data(), 0), 0.0);
}

// ---- CUDA against the CPU -------------------------------------------------------------

// adam_update: FMA contraction and sqrtf (correctly rounded, as std::sqrt)
// leave a few ulp per output; the step divides by sqrt(v) + eps, which can
// amplify one ulp of v to ~1e-7 relative: 1e-5 leaves room.
TEST(OptimOpsCuda, AdamMatchesCpu) {
  for (AdamTarget target : {AdamTarget::Param, AdamTarget::Direction}) {
    compare_with_cpu("adam_update", 1e-5, [target](Backend& be) {
      Rng rng(21);
      float* p = be.upload(randn(kN, rng));
      float* m = be.upload(randn(kN, rng, 0.1));
      float* v = be.upload(rand_sq(kN, rng, 0.1));
      const float* g = be.upload(randn(kN, rng));
      adam_update(be.ctx(), p, m, v, g, kN, adamw_step3(), target);
      return std::vector<std::vector<float>>{be.download(p, kN), be.download(m, kN), be.download(v, kN)};
    });
  }
}

// lion_update: the moments differ by an ulp (FMA); the parameter moves by
// exactly lr, and sign(c) flips only where c is within an ulp of 0 (a handful
// of 1e5 entries at most would give a 2 lr / max|p| ~ 5e-5 error): 1e-4.
TEST(OptimOpsCuda, LionMatchesCpu) {
  compare_with_cpu("lion_update", 1e-4, [](Backend& be) {
    Rng rng(22);
    float* p = be.upload(randn(kN, rng));
    float* m = be.upload(randn(kN, rng, 0.1));
    const float* g = be.upload(randn(kN, rng));
    LionStep s;
    s.c1 = static_cast<float>(1.0 - 0.9), s.c2 = static_cast<float>(1.0 - 0.99), s.lr = 1e-4f, s.decay = 0.99999f;
    lion_update(be.ctx(), p, m, g, kN, s);
    return std::vector<std::vector<float>>{be.download(p, kN), be.download(m, kN)};
  });
}

// spam_update and the sparse walk: Adam's arithmetic (1e-5, as adam_update)
// plus the clip's comparison g^2 > theta v, which an ulp can flip only where
// both sides are equal to rounding (then both branches give |g| = sqrt(theta v)
// to rounding): 1e-5. The chunk offsets are integers: exact.
TEST(OptimOpsCuda, SpamMatchesCpu) {
  compare_with_cpu("spam_update", 1e-5, [](Backend& be) {
    Rng rng(23);
    float* p = be.upload(randn(kN, rng));
    float* m = be.upload(randn(kN, rng, 0.1));
    float* v = be.upload(rand_sq(kN, rng, 0.5));
    const float* g = be.upload(randn(kN, rng));
    spam_update(be.ctx(), p, m, v, g, kN, spam_step(true));
    return std::vector<std::vector<float>>{be.download(p, kN), be.download(m, kN), be.download(v, kN)};
  });
  compare_with_cpu("spam_sparse_update", 1e-5, [](Backend& be) {
    Rng rng(24);
    const int64_t numel = 5000 * kSpamMaskBits + 3, keep = numel / 4;
    const auto mask_host = random_mask(numel, keep, rng);
    const int64_t words = static_cast<int64_t>(mask_host.size());
    const float* mask = be.upload(mask_host);
    float* p = be.upload(randn(numel, rng));
    float* m = be.upload(randn(keep, rng, 0.1));
    float* v = be.upload(rand_sq(keep, rng, 0.5));
    const float* g = be.upload(randn(numel, rng));
    const size_t nchunks = static_cast<size_t>(spam_mask_chunks(words));
    int64_t* chunk_start = be.upload(std::vector<int64_t>(nchunks + 1, -1));
    const SpamMaskCount count = spam_mask_offsets(be.ctx(), chunk_start, mask, words, numel);
    EXPECT_EQ(count.entries, keep);
    EXPECT_EQ(count.invalid_words, 0);
    const auto starts = be.download(chunk_start, nchunks + 1);
    spam_sparse_update(be.ctx(), p, m, v, g, mask, words, chunk_start, spam_step(true));
    return std::vector<std::vector<float>>{std::vector<float>(starts.begin(), starts.end()), be.download(p, numel),
                                           be.download(m, keep), be.download(v, keep)};
  });
}

// sgd_update, scale, subtract: one or two roundings each, FMA may fuse one:
// 1e-6. The gathers and scatters copy: exact.
TEST(OptimOpsCuda, ElementwiseAndIndexOpsMatchCpu) {
  compare_with_cpu("sgd_update, scale, subtract", 1e-6, [](Backend& be) {
    Rng rng(25);
    float* p1 = be.upload(randn(kN, rng));
    float* p2 = be.upload(randn(kN, rng));
    float* x = be.upload(randn(kN, rng));
    const float* d = be.upload(randn(kN, rng));
    float* out = be.upload(std::vector<float>(kN));
    sgd_update(be.ctx(), p1, d, kN, 0.999f, 1e-3f, SgdDirection::Sign);
    sgd_update(be.ctx(), p2, d, kN, 0.999f, 1e-3f, SgdDirection::Plain);
    scale(be.ctx(), x, kN, 0.37f);
    subtract(be.ctx(), out, p1, d, kN);
    return std::vector<std::vector<float>>{be.download(p1, kN), be.download(p2, kN), be.download(x, kN),
                                           be.download(out, kN)};
  });
  compare_with_cpu("index_gather, index_scatter", 1e-30, [](Backend& be) {
    Rng rng(26);
    const int64_t m = 300, n = 257, r = 64;
    const float* in = be.upload(randn(static_cast<size_t>(m * n), rng));
    const float* cols = be.upload(random_indices(n, r, rng));
    const float* rows = be.upload(random_indices(m, r, rng));
    float* gc = be.upload(std::vector<float>(static_cast<size_t>(m * r)));
    float* gr = be.upload(std::vector<float>(static_cast<size_t>(r * n)));
    float* sc = be.upload(std::vector<float>(static_cast<size_t>(m * n), 5.0f));
    float* sr = be.upload(std::vector<float>(static_cast<size_t>(m * n), 5.0f));
    index_gather(be.ctx(), gc, in, cols, m, n, r, IndexAxis::Columns);
    index_gather(be.ctx(), gr, in, rows, m, n, r, IndexAxis::Rows);
    index_scatter(be.ctx(), sc, gc, cols, m, n, r, IndexAxis::Columns);
    index_scatter(be.ctx(), sr, gr, rows, m, n, r, IndexAxis::Rows);
    return std::vector<std::vector<float>>{be.download(gc, m * r), be.download(gr, r * n), be.download(sc, m * n),
                                           be.download(sr, m * n)};
  });
}

// grad_norm_squared: double sums of 2^16 terms in a tree instead of in
// order: ~1e-16 * log2(2^16) relative, far below 1e-12; and the same bits on
// a second run (a fixed tree, then the chunks in order).
TEST(OptimOpsCuda, GradNormSquaredMatchesCpuAndRepeats) {
  if (!LINTRAIN_HAS_CUDA) GTEST_SKIP() << "built without CUDA: grad_norm_squared runs on the CPU only";
  if (!cuda_available()) GTEST_SKIP() << "no CUDA GPU on this machine: grad_norm_squared on CUDA is not exercised";
  Rng rng(27);
  const auto g = randn(kNormN, rng, 3.0);
  Backend cpu(Device::CPU), gpu(Device::CUDA);
  const double want = grad_norm_squared(cpu.ctx(), cpu.upload(g), kNormN);
  const float* gd = gpu.upload(g);
  const double got = grad_norm_squared(gpu.ctx(), gd, kNormN), again = grad_norm_squared(gpu.ctx(), gd, kNormN);
  EXPECT_LT(std::fabs(got - want) / want, 1e-12);
  EXPECT_EQ(std::memcmp(&got, &again, sizeof got), 0);
}

// ---- argument checks ---------------------------------------------------------------------

namespace {
template <typename F>
void expect_error(const char* what, F f) {
  try {
    f();
    ADD_FAILURE() << "no error, expected: " << what;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
  }
}
}  // namespace

TEST(OptimOps, ArgumentErrorsNameTheOp) {
  std::vector<float> buf(64);
  float* b = buf.data();
  const Context cpu;
  expect_error("[adam_update] argument 3 is null (n = 8)",
               [&] { adam_update(cpu, b, b, b, nullptr, 8, AdamStep{}, AdamTarget::Param); });
  expect_error("[lion_update] needs n >= 0 values, got n = -1", [&] { lion_update(cpu, b, b, b, -1, LionStep{}); });
  expect_error("[spam_update] argument 0 is null", [&] { spam_update(cpu, nullptr, b, b, b, 4, SpamStep{}); });
  std::vector<int64_t> starts(2);
  expect_error("[spam_mask_offsets] a mask of 40 entries has 3 words of 16 bits, got words = 2",
               [&] { spam_mask_offsets(cpu, starts.data(), b, 2, 40); });
  expect_error("[spam_sparse_update] argument 5 is null",
               [&] { spam_sparse_update(cpu, b, b, b, b, b, 3, nullptr, SpamStep{}); });
  expect_error("[sgd_update] argument 1 is null", [&] { sgd_update(cpu, b, nullptr, 4, 1.0f, 1.0f, SgdDirection::Sign); });
  expect_error("[scale] argument 0 is null", [&] { scale(cpu, nullptr, 4, 0.5f); });
  expect_error("[subtract] argument 2 is null", [&] { subtract(cpu, b, b, nullptr, 4); });
  expect_error("[index_gather] needs m, n >= 0 and 0 <= r <= n (columns), got m = 4, n = 3, r = 5",
               [&] { index_gather(cpu, b, b, b, 4, 3, 5, IndexAxis::Columns); });
  expect_error("[index_scatter] the index argument is null (r = 2)",
               [&] { index_scatter(cpu, b, b, nullptr, 4, 3, 2, IndexAxis::Rows); });
  expect_error("[grad_norm_squared] needs a scratch arena", [&] { grad_norm_squared(cpu, b, 8); });
  // Nothing to do is no error, with or without pointers.
  EXPECT_NO_THROW(adam_update(cpu, nullptr, nullptr, nullptr, nullptr, 0, AdamStep{}, AdamTarget::Direction));
  EXPECT_EQ(grad_norm_squared(cpu, nullptr, 0), 0.0);
}

TEST(OptimOps, GradNormScratchIsSizedAndGivenBack) {
  Arena arena;
  arena.reserve(grad_norm_squared_scratch_bytes(Device::CPU, kNormN));
  Context ctx;
  ctx.scratch = &arena;
  std::vector<float> g(kNormN, 1.0f);
  EXPECT_EQ(grad_norm_squared(ctx, g.data(), kNormN), static_cast<double>(kNormN));
  EXPECT_EQ(arena.used(), 0u) << "an op must give its scratch back";
  // 9 chunk sums (72 bytes) do not fit the smallest reservation (64): a sizing error, not an allocation.
  const int64_t n9 = 8 * kGradNormChunk + 1;
  std::vector<float> g9(static_cast<size_t>(n9), 1.0f);
  Arena small;
  small.reserve(8);
  ctx.scratch = &small;
  EXPECT_THROW(grad_norm_squared(ctx, g9.data(), n9), Error);
  small.reserve(grad_norm_squared_scratch_bytes(Device::CPU, n9));
  EXPECT_EQ(grad_norm_squared(ctx, g9.data(), n9), static_cast<double>(n9));
}

// A CPU-only build links runtime/no_cuda: an op on a CUDA context names itself.
TEST(OptimOps, WithoutCudaAnOpOnACudaContextSaysSo) {
  if (LINTRAIN_HAS_CUDA) GTEST_SKIP() << "built with CUDA: the no_cuda bodies are not linked";
  Context ctx;
  ctx.device = Device::CUDA;
  std::vector<float> buf(16);
  try {
    scale(ctx, buf.data(), 16, 0.5f);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "[scale] has no CUDA implementation (built without CUDA)");
  }
}
