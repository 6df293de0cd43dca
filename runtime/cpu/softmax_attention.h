// Causal multi-head softmax attention with grouped-query (GQA) support, CPU
// backend: forward and backward, memory-efficient in the FlashAttention sense.
// It never holds a T x T score matrix: work is split into blocks of
// `q_block` queries of one (sequence, head); each thread keeps one
// q_block x Tk score tile, and the backward recomputes the probabilities from
// the saved row log-sum-exp instead of storing them.
//
// Layout (all row-major with explicit row strides, in floats):
//   q    (B, Tq, H,   d)  head h of query t of sequence b at q + (b*Tq + t)*ldq + h*d
//   k, v (B, Tk, KVH, d)  likewise with ldk / ldv; query head h reads kv head
//                         h / (H / KVH)
//   o    (B, Tq, H,   d)  stride ldo
//   lse  (B, H, Tq)       contiguous; lse = log sum_j exp(s_j) of each query row
// Query t sits at position q_offset + t among the keys (keys are at positions
// 0..Tk-1) and attends keys 0..q_offset+t; so Tk >= q_offset + Tq. A single
// rank uses q_offset = 0, Tk = Tq. Under LASP-2H a rank passes its chunk of
// queries with q_offset = rank * chunk against the all-gathered keys/values.
// Scores are scaled by 1/sqrt(d).
//
// Parallelism and determinism: the forward splits over (b, h, query block),
// the backward over (b, kv head) with the group's query heads and blocks in a
// fixed order inside, so dK/dV accumulate without races or atomics. Each work
// item runs on one thread with single-threaded GEMMs (OpenBLAS' OpenMP build
// inside our parallel region), so results are bit-identical from run to run
// and for any thread count. The backward uses at most B * KVH threads.
#pragma once

namespace lintrain {

struct AttentionDims {
  int B = 0;         // sequences
  int Tq = 0;        // queries per sequence
  int Tk = 0;        // keys/values per sequence, >= q_offset + Tq
  int H = 0;         // query heads
  int KVH = 0;       // key/value heads, divides H
  int d = 0;         // head dimension of q, k and v
  int q_offset = 0;  // position of query 0 among the keys, >= 0
  int q_block = 64;  // queries per work item; scratch is 2 * q_block * Tk floats per thread
};

// o = softmax(mask(q k^T / sqrt(d))) v and the row log-sum-exp lse (B, H, Tq)
// that the backward needs. o and lse are assigned. Throws lintrain::Error
// naming the bad dimension or stride.
void softmax_attention_forward(const AttentionDims& dims, float* o, int ldo, float* lse, const float* q, int ldq,
                               const float* k, int ldk, const float* v, int ldv);

// Gradients of the forward given dout = dL/do, the forward's inputs, its
// output o and its lse. dq (layout of q), dk, dv (layout of k, v) are
// assigned (=), including zeros for keys no query sees; accumulate into
// parameter gradients elsewhere. Output buffers must not overlap the inputs.
void softmax_attention_backward(const AttentionDims& dims, float* dq, int lddq, float* dk, int lddk, float* dv,
                                int lddv, const float* dout, int lddo, const float* q, int ldq, const float* k,
                                int ldk, const float* v, int ldv, const float* o, int ldo, const float* lse);

}  // namespace lintrain
