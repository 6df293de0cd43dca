#pragma once

// The optimizer ops of the op interface (runtime/ops.h includes this;
// include runtime/ops.h, not this file). Checks in runtime/ops_optim.cpp.
#include <cstddef>
#include <cstdint>

#include "runtime/context.h"

// ---- Optimizer updates, the gradient norm and clipping ------------------------------
// The update loops of optim/ (AdamW, Lion, GaLore, SPAM, FRUGAL), elementwise
// over n >= 0 values of the flat buffers (every pointer set when n > 0). The
// optimizers compute the scalar coefficients in double and round them to f32
// (as optim/*.h say), so every backend applies the same numbers. The CPU
// bodies are the loops optim/ had, in the same expression order: bit for bit
// the same results. On CUDA, contraction into FMAs makes them agree to
// rounding only.
namespace lintrain {

// The Adam moment update and its step, one body for AdamW, GaLore and FRUGAL:
//   m = b1 m + c1 g,   v = b2 v + c2 g^2
//   u = step_size * m / (sqrt(v) * inv_sqrt_bc2 + eps)
// step_size = lr / (1 - b1^t) and inv_sqrt_bc2 = 1 / sqrt(1 - b2^t) give the
// bias-corrected step; 1 and 1 the bare direction m / (sqrt(v) + eps) (both
// products by 1 are exact, so that form loses no bits).
struct AdamStep {
  float b1 = 0.9f, b2 = 0.999f;
  float c1 = 0.1f, c2 = 0.001f;  // 1 - b1, 1 - b2, rounded as the optimizer rounds them
  float eps = 1e-8f;
  float step_size = 1.0f;
  float inv_sqrt_bc2 = 1.0f;
  float decay = 1.0f;  // 1 - lr wd, applied to the parameter before its step (AdamTarget::Param)
};
enum class AdamTarget {
  Param,      // out is the parameter: out = out * decay - u   (AdamW, FRUGAL blockwise)
  Direction,  // out = u, the step itself, which the caller lifts (GaLore, FRUGAL coordinates);
              // out may be g (the step replaces the projected gradient in place)
};
// out, m, v, g (n).
void adam_update(const Context& ctx, float* out, float* m, float* v, const float* g, int64_t n, const AdamStep& s,
                 AdamTarget target);

// Lion: c = b1 m + c1 g;  p = p * decay - lr * sign(c) (sign(0) = 0);  m = b2 m + c2 g.
struct LionStep {
  float b1 = 0.9f, b2 = 0.99f;
  float c1 = 0.1f, c2 = 0.01f;  // 1 - b1, 1 - b2, rounded from double
  float lr = 1e-4f;
  float decay = 1.0f;  // 1 - lr wd
};
// p, m, g (n).
void lion_update(const Context& ctx, float* p, float* m, const float* g, int64_t n, const LionStep& s);

// SPAM (optim/spam.h), per element: when clip, g = sign(g) sqrt(theta v) where
// g^2 > theta v (v before the update); m = b1 m + c1 g, v = b2 v + c2 g^2;
// p = (p - step * m / (sqrt(v) + eps)) * decay.
struct SpamStep {
  float b1 = 0.9f, b2 = 0.999f;
  float c1 = 0.1f, c2 = 0.001f;  // 1 - b1, 1 - b2, rounded from double
  float eps = 1e-6f, theta = 5000.0f;
  float step = 1e-3f;  // lr * s(t) * sqrt(1 - b2^t) / (1 - b1^t)
  float decay = 1.0f;  // 1 - lr wd, after the update
  bool clip = false;
};
// Dense: p, m, v, g (n).
void spam_update(const Context& ctx, float* p, float* m, float* v, const float* g, int64_t n, const SpamStep& s);

// Sparse SPAM keeps moments for a set of entries given by a mask of f32 words:
// entry i is in the set when bit (i mod 16) of word i / 16 (an integer in
// [0, 65535]) is set, and owns moment k when it is the k-th set entry. The
// update runs in chunks of kSpamChunkWords words, each starting at its own
// moment offset.
constexpr int kSpamMaskBits = 16;
constexpr int64_t kSpamChunkWords = 1024;
inline int64_t spam_mask_chunks(int64_t words) { return (words + kSpamChunkWords - 1) / kSpamChunkWords; }
struct SpamMaskCount {
  int64_t entries = 0;        // set bits in valid words
  int64_t invalid_words = 0;  // not an integer in [0, 65535], or with bits at or beyond numel
};
// Pass 1: chunk_start (spam_mask_chunks(words) + 1, on ctx.device) = where
// each chunk starts among the moments, the total at the end; mask (words)
// covers numel entries (words = ceil(numel / 16)). The mask may come from a
// checkpoint: the caller refuses it unless invalid_words = 0 and entries = its
// moment count, so pass 2 never indexes past the moments.
SpamMaskCount spam_mask_offsets(const Context& ctx, int64_t* chunk_start, const float* mask, int64_t words,
                                int64_t numel);
// Pass 2: the update of the entries in the mask, p and g (numel) indexed by
// entry, m and v (entries) by moment; the other entries are left alone.
void spam_sparse_update(const Context& ctx, float* p, float* m, float* v, const float* g, const float* mask,
                        int64_t words, const int64_t* chunk_start, const SpamStep& s);

// The state-free step of FRUGAL: p = p * decay - lr * sign(d) (sign(0) = 0),
// or p = p * decay - lr * d.       p, d (n).
enum class SgdDirection { Sign, Plain };
void sgd_update(const Context& ctx, float* p, const float* d, int64_t n, float decay, float lr, SgdDirection dir);

// x (n) = x * s: gradient clipping, weight decay alone.
void scale(const Context& ctx, float* x, int64_t n, float s);
// out (n) = a - b; out may be a or b.
void subtract(const Context& ctx, float* out, const float* a, const float* b, int64_t n);

// FRUGAL randk: r chosen columns (IndexAxis::Columns) or rows (Rows) of a
// matrix (m, n); idx (r) holds their indices as exact float integers, each in
// [0, n) or [0, m) (the caller's invariant: drawn so, or checked on restore).
enum class IndexAxis { Columns, Rows };
// out (m, r) = in[:, idx]   or   out (r, n) = in[idx, :]      in (m, n)
void index_gather(const Context& ctx, float* out, const float* in, const float* idx, int64_t m, int64_t n, int64_t r,
                  IndexAxis axis);
// out (m, n) = 0 except out[:, idx] = in (m, r)   or   out[idx, :] = in (r, n)
void index_scatter(const Context& ctx, float* out, const float* in, const float* idx, int64_t m, int64_t n,
                   int64_t r, IndexAxis axis);

// Sum of g^2 over g (n), in double: fixed chunks of kGradNormChunk values, each
// summed in order, then the chunk sums in chunk order, so the CPU gives the
// same bits for any thread count. CUDA sums each chunk as a tree (another
// order: equal to rounding) and the chunk sums in order: the same bits run to
// run. Returns to the host (on CUDA it waits for the stream). Needs
// grad_norm_squared_scratch_bytes of scratch.
constexpr int64_t kGradNormChunk = int64_t{1} << 16;
double grad_norm_squared(const Context& ctx, const float* g, int64_t n);
size_t grad_norm_squared_scratch_bytes(Device device, int64_t n);

}  // namespace lintrain
