// The optimizers' update loops, the gradient norm and clipping on the CPU (the
// ops: runtime/ops.h). Moved from optim/ with each expression as it was: the
// updates are bit for bit those of the loops they replace.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "runtime/arena.h"
#include "runtime/backend.h"
#include "runtime/ops.h"

namespace lintrain::cpu {

void adam_update(float* out, float* m, float* v, const float* g, int64_t n, const AdamStep& s, AdamTarget target) {
  const float b1 = s.b1, b2 = s.b2, c1 = s.c1, c2 = s.c2, eps = s.eps;
  const float step_size = s.step_size, inv_sqrt_bc2 = s.inv_sqrt_bc2, decay = s.decay;
  if (target == AdamTarget::Param) {
    float* p = out;
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      m[i] = b1 * m[i] + c1 * g[i];
      v[i] = b2 * v[i] + c2 * g[i] * g[i];
      p[i] = p[i] * decay - step_size * m[i] / (std::sqrt(v[i]) * inv_sqrt_bc2 + eps);
    }
  } else {
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      m[i] = b1 * m[i] + c1 * g[i];
      v[i] = b2 * v[i] + c2 * g[i] * g[i];
      out[i] = step_size * m[i] / (std::sqrt(v[i]) * inv_sqrt_bc2 + eps);
    }
  }
}

void lion_update(float* p, float* m, const float* g, int64_t n, const LionStep& s) {
  const float b1 = s.b1, b2 = s.b2, c1 = s.c1, c2 = s.c2, step = s.lr, decay = s.decay;
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float c = b1 * m[i] + c1 * g[i];
    // sign(c) with sign(0) = 0, branch-free so the loop vectorises.
    const float sign = static_cast<float>(c > 0.0f) - static_cast<float>(c < 0.0f);
    p[i] = p[i] * decay - step * sign;
    m[i] = b2 * m[i] + c2 * g[i];
  }
}

namespace {

// One element of the SPAM update; shared by the dense and sparse loops.
inline void spam_element(float& p, float g, float& m, float& v, const SpamStep& c) {
  if (c.clip) {
    const float limit_sq = c.theta * v;  // v before this step's update
    g = g * g > limit_sq ? std::copysign(std::sqrt(limit_sq), g) : g;
  }
  m = c.b1 * m + c.c1 * g;
  v = c.b2 * v + c.c2 * g * g;
  p = (p - c.step * m / (std::sqrt(v) + c.eps)) * c.decay;
}

inline float sign_of(float x) { return static_cast<float>((x > 0.0f) - (x < 0.0f)); }

}  // namespace

void spam_update(float* p, float* m, float* v, const float* g, int64_t n, const SpamStep& s) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) spam_element(p[i], g[i], m[i], v[i], s);
}

SpamMaskCount spam_mask_offsets(int64_t* chunk_start, const float* mask, int64_t words, int64_t numel) {
  const int64_t nchunks = spam_mask_chunks(words);
  const uint32_t last_word_bits =
      words == 0 ? 0u : static_cast<uint32_t>((1ull << (numel - (words - 1) * kSpamMaskBits)) - 1);
  chunk_start[0] = 0;
  int64_t bad_words = 0;
#pragma omp parallel for schedule(static) reduction(+ : bad_words)
  for (int64_t ch = 0; ch < nchunks; ++ch) {
    int64_t count = 0;
    for (int64_t w = ch * kSpamChunkWords; w < std::min(words, (ch + 1) * kSpamChunkWords); ++w) {
      const float x = mask[w];
      const uint32_t allowed = w == words - 1 ? last_word_bits : 0xffffu;
      if (!(x >= 0.0f && x <= 65535.0f) || x != std::floor(x) || (static_cast<uint32_t>(x) & ~allowed) != 0) {
        ++bad_words;
        continue;
      }
      count += __builtin_popcount(static_cast<uint32_t>(x));
    }
    chunk_start[ch + 1] = count;
  }
  for (int64_t ch = 0; ch < nchunks; ++ch) chunk_start[ch + 1] += chunk_start[ch];
  SpamMaskCount out;
  out.entries = chunk_start[nchunks];
  out.invalid_words = bad_words;
  return out;
}

void spam_sparse_update(float* p, float* m, float* v, const float* g, const float* mask, int64_t words,
                        const int64_t* chunk_start, const SpamStep& s) {
  const int64_t nchunks = spam_mask_chunks(words);
#pragma omp parallel for schedule(static)
  for (int64_t ch = 0; ch < nchunks; ++ch) {
    int64_t k = chunk_start[ch];
    for (int64_t w = ch * kSpamChunkWords; w < std::min(words, (ch + 1) * kSpamChunkWords); ++w) {
      for (uint32_t bits = static_cast<uint32_t>(mask[w]); bits != 0; bits &= bits - 1, ++k) {
        const int64_t i = w * kSpamMaskBits + __builtin_ctz(bits);
        spam_element(p[i], g[i], m[k], v[k], s);
      }
    }
  }
}

void sgd_update(float* p, const float* d, int64_t n, float decay, float lr, SgdDirection dir) {
  if (dir == SgdDirection::Sign) {
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) p[i] = p[i] * decay - lr * sign_of(d[i]);
  } else {
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; ++i) p[i] = p[i] * decay - lr * d[i];
  }
}

void scale(float* x, int64_t n, float s) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) x[i] *= s;
}

void subtract(float* out, const float* a, const float* b, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] - b[i];
}

void index_gather(float* out, const float* in, const float* idx, int64_t m, int64_t n, int64_t r, IndexAxis axis) {
  if (axis == IndexAxis::Columns) {  // out (m, r) = the chosen columns
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < r; ++j) out[i * r + j] = in[i * n + static_cast<int64_t>(idx[j])];
  } else {  // out (r, n) = the chosen rows
    for (int64_t j = 0; j < r; ++j)
      std::memcpy(out + j * n, in + static_cast<int64_t>(idx[j]) * n, sizeof(float) * static_cast<size_t>(n));
  }
}

void index_scatter(float* out, const float* in, const float* idx, int64_t m, int64_t n, int64_t r, IndexAxis axis) {
  std::fill(out, out + m * n, 0.0f);
  if (axis == IndexAxis::Columns) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < r; ++j) out[i * n + static_cast<int64_t>(idx[j])] = in[i * r + j];
  } else {
    for (int64_t j = 0; j < r; ++j)
      std::memcpy(out + static_cast<int64_t>(idx[j]) * n, in + j * n, sizeof(float) * static_cast<size_t>(n));
  }
}

size_t grad_norm_squared_scratch_bytes(int64_t n) {
  return arena_round(static_cast<size_t>((n + kGradNormChunk - 1) / kGradNormChunk) * sizeof(double));
}

double grad_norm_squared(Arena& scratch, const float* g, int64_t n) {
  // Fixed-size chunks summed in order: the same bits for any thread count.
  const int64_t nchunks = (n + kGradNormChunk - 1) / kGradNormChunk;
  if (nchunks == 0) return 0.0;
  ScratchScope scope(scratch);
  double* partial = scope.take<double>(static_cast<size_t>(nchunks), "grad_norm_squared");
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < nchunks; ++c) {
    double s = 0.0;
    const int64_t end = std::min(n, (c + 1) * kGradNormChunk);
    for (int64_t i = c * kGradNormChunk; i < end; ++i) s += static_cast<double>(g[i]) * g[i];
    partial[c] = s;
  }
  double total = 0.0;
  for (int64_t c = 0; c < nchunks; ++c) total += partial[c];
  return total;
}

}  // namespace lintrain::cpu
