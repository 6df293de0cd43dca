// LASP-1 (ring) against LASP-2 (AllGather) for one linear-attention layer,
// run under mpirun: one MPI rank per sequence chunk.
//
// Both schedules do the same local work with the same kernels
// (linear_attention_forward/backward of runtime/ops.h for the intra-chunk
// part, its LASP-2 terms for what crosses chunk boundaries); only the
// exchange of the (B, H, d, d) memory state differs:
//   LASP-1  forward:  M_j; intra; MPI_Recv P_j from j-1; P_{j+1} = lambda^C P_j + M_j;
//                     MPI_Send P_{j+1} to j+1; out += (Lq Q) P_j
//           backward: dP_j; intra backward; dq += P_j term; MPI_Recv G_j from j+1;
//                     G_{j-1} = lambda^C G_j + dP_j; MPI_Send to j-1; dk, dv += G_j terms
//           so the state walks the ring rank by rank: W-1 dependent hops on the
//           critical path per direction (this is LASP-1's best order: the hops
//           carry only the d x d update, all chunk work is off the chain).
//   LASP-2  the library's Lasp2StateExchange: M_j -> begin AllGather -> intra
//           -> wait -> prefix merge -> out += (Lq Q) P_j (and mirrored backward).
// The reference for validation is the library layer itself, LinearAttentionCore
// with an MpiCommunicator, configured as a bare kernel (identity feature map,
// no norm, no gate) so its output is exactly the attention these schedules
// compute. Both bench schedules must match it within 1e-5 (normwise relative:
// max|x - ref| / max|ref| per tensor; LASP-1 sums the prefix in fp32 along
// the chain where LASP-2 sums it in double, a few ulps per hop) for two decay
// sets (tnl: fast decays; none: lambda = 1, every chunk's state reaches
// every later chunk); a failure prints the errors and exits 1.
//
// Timing: forward + backward of --layers independent layers per repetition,
// ranks aligned by a barrier, the step time is the slowest rank's; median and
// best of --reps after one warm-up, the three variants interleaved per
// repetition so drift hits them alike. Also timed alone at this W: the LASP-1
// chain of W-1 hops (no compute) and one MPI_Allgather of the state.
//   usage: mpirun -np W bench_lasp1_vs_lasp2 [--tokens 16384] [--heads 16]
//              [--head-dim 64] [--batch 1] [--block 64] [--layers 1] [--reps 5] [--ftz]
// --tokens is the whole sequence (strong scaling): each rank holds T / W.
// --ftz sets flush-to-zero / denormals-are-zero on this process's (single)
// compute thread: the chunk-boundary terms scale rows by lambda^n over the
// whole chunk, and for fast-decaying heads part of them are denormal floats,
// which cost this CPU ~100x per operation (RESULTS.md, issue 3).
#include <mpi.h>
#include <xmmintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "layers/linear_attention.h"
#include "parallel/lasp2.h"
#include "parallel/mpi_communicator.h"
#include "runtime/cpu/gemm.h"
#include "runtime/error.h"
#include "runtime/ops.h"
#include "runtime/rng.h"

using namespace lintrain;

namespace {

// lambda_h^C per head, as the library computes powers (exp in double).
std::vector<float> chunk_decays(const std::vector<float>& decay, int C) {
  std::vector<float> w(decay.size());
  for (size_t h = 0; h < decay.size(); ++h)
    w[h] = static_cast<float>(std::exp(static_cast<double>(C) * std::log(static_cast<double>(decay[h]))));
  return w;
}

// out[b,h] = w_h * in[b,h] + add[b,h] over (B, H, d, d) states.
void decay_and_add(float* out, const float* in, const float* add, const std::vector<float>& w, int B,
                   int H, int d) {
  const size_t dd = static_cast<size_t>(d) * d;
  for (int bh = 0; bh < B * H; ++bh) {
    const float wh = w[static_cast<size_t>(bh % H)];
    for (size_t i = 0; i < dd; ++i) out[bh * dd + i] = wh * in[bh * dd + i] + add[bh * dd + i];
  }
}

// The local work both schedules share, and the seconds each rank spends
// exchanging states (the part that differs).
class ChunkLayer {
 public:
  ChunkLayer(const LinearAttentionDims& dims, std::vector<float> decay)
      : dims_(dims), decay_(std::move(decay)),
        state_(static_cast<size_t>(dims.B) * dims.H * dims.d * dims.d) {
    // The kernels' scratch, for the thread count they will run with.
    ctx_.scratch = &arena_;
    const Device cpu = Device::CPU;
    arena_.reserve(std::max({linear_attention_forward_scratch_bytes(cpu, dims),
                             linear_attention_backward_scratch_bytes(cpu, dims), lasp2_terms_scratch_bytes(cpu, dims),
                             lasp2_merge_states_scratch_bytes(cpu, dims.B, dims.H, dims.d)}));
  }
  virtual ~ChunkLayer() = default;
  // out (N, H d) assigned; qkv (N, (H + 2 KVH) d) fused; dqkv assigned.
  virtual void forward(float* out, const float* qkv) = 0;
  virtual void backward(float* dqkv, const float* dout, const float* qkv) = 0;
  double exchange_seconds = 0;

 protected:
  const float* q(const float* qkv) const { return qkv; }
  const float* k(const float* qkv) const { return qkv + dims_.H * dims_.d; }
  const float* v(const float* qkv) const { return qkv + (dims_.H + dims_.KVH) * dims_.d; }
  LinearAttentionDims dims_;
  std::vector<float> decay_;
  size_t state_;  // floats per state
  Arena arena_;
  Context ctx_;
};

class Lasp1Layer : public ChunkLayer {
 public:
  Lasp1Layer(MPI_Comm comm, const LinearAttentionDims& dims, std::vector<float> decay)
      : ChunkLayer(dims, std::move(decay)), comm_(comm), M_(state_), P_(state_), next_(state_),
        dP_(state_), G_(state_) {
    MPI_Comm_rank(comm, &rank_);
    MPI_Comm_size(comm, &size_);
    wC_ = chunk_decays(decay_, dims.T);
  }

  void forward(float* out, const float* qkv) override {
    if (size_ > 1) lasp2_chunk_state(ctx_, M_.data(), k(qkv), v(qkv), decay_.data(), dims_);
    linear_attention_forward(ctx_, out, q(qkv), k(qkv), v(qkv), decay_.data(), nullptr, nullptr, dims_);
    if (size_ == 1) return;  // one chunk: no boundary, as in LASP-2 and the core
    const double t0 = MPI_Wtime();
    ring_step(M_, P_, rank_ - 1, rank_ + 1, 11);
    exchange_seconds += MPI_Wtime() - t0;
    lasp2_add_prefix_output(ctx_, out, q(qkv), P_.data(), decay_.data(), dims_);
  }

  void backward(float* dqkv, const float* dout, const float* qkv) override {
    const int Hd = dims_.H * dims_.d;
    float *dq = dqkv, *dk = dqkv + Hd, *dv = dqkv + Hd + dims_.KVH * dims_.d;
    if (size_ > 1) lasp2_prefix_state_grad(ctx_, dP_.data(), q(qkv), dout, decay_.data(), dims_);
    linear_attention_backward(ctx_, dq, dk, dv, nullptr, dout, nullptr, q(qkv), k(qkv), v(qkv), decay_.data(),
                              nullptr, dims_);
    if (size_ == 1) return;
    lasp2_add_prefix_dq(ctx_, dq, dout, P_.data(), decay_.data(), dims_);
    const double t0 = MPI_Wtime();
    ring_step(dP_, G_, rank_ + 1, rank_ - 1, 12);
    exchange_seconds += MPI_Wtime() - t0;
    lasp2_add_suffix_dkdv(ctx_, dk, dv, k(qkv), v(qkv), G_.data(), decay_.data(), dims_);
  }

  // The chain alone (no compute): forward hops of the current M_.
  void chain_only() { ring_step(M_, P_, rank_ - 1, rank_ + 1, 13); }

 private:
  // in_state = the state from `from` (zeros at the chain's start); sends
  // lambda^C in_state + mine to `to` (if it exists).
  void ring_step(const std::vector<float>& mine, std::vector<float>& in_state, int from, int to, int tag) {
    const int n = static_cast<int>(state_);
    if (from >= 0 && from < size_)
      LT_MPI_CHECK(MPI_Recv(in_state.data(), n, MPI_FLOAT, from, tag, comm_, MPI_STATUS_IGNORE));
    else
      std::fill(in_state.begin(), in_state.end(), 0.0f);
    if (to >= 0 && to < size_) {
      decay_and_add(next_.data(), in_state.data(), mine.data(), wC_, dims_.B, dims_.H, dims_.d);
      LT_MPI_CHECK(MPI_Send(next_.data(), n, MPI_FLOAT, to, tag, comm_));
    }
  }

  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
  std::vector<float> wC_;
  std::vector<float> M_, P_, next_, dP_, G_;
};

class Lasp2Layer : public ChunkLayer {
 public:
  Lasp2Layer(Communicator* comm, const LinearAttentionDims& dims, std::vector<float> decay)
      : ChunkLayer(dims, std::move(decay)), P_(state_), G_(state_) {
    if (comm->size() > 1)
      ex_ = std::make_unique<Lasp2StateExchange>(ctx_, comm, dims.B, dims.H, dims.d, dims.T, decay_);
  }

  void forward(float* out, const float* qkv) override {
    if (ex_) lasp2_chunk_state(ctx_, ex_->local_state(), k(qkv), v(qkv), decay_.data(), dims_);
    if (ex_) ex_->begin_forward();
    linear_attention_forward(ctx_, out, q(qkv), k(qkv), v(qkv), decay_.data(), nullptr, nullptr, dims_);
    if (!ex_) return;
    const double t0 = MPI_Wtime();
    ex_->end_forward(P_.data());
    exchange_seconds += MPI_Wtime() - t0;
    lasp2_add_prefix_output(ctx_, out, q(qkv), P_.data(), decay_.data(), dims_);
  }

  void backward(float* dqkv, const float* dout, const float* qkv) override {
    const int Hd = dims_.H * dims_.d;
    float *dq = dqkv, *dk = dqkv + Hd, *dv = dqkv + Hd + dims_.KVH * dims_.d;
    if (ex_) lasp2_prefix_state_grad(ctx_, ex_->local_state(), q(qkv), dout, decay_.data(), dims_);
    if (ex_) ex_->begin_backward();
    linear_attention_backward(ctx_, dq, dk, dv, nullptr, dout, nullptr, q(qkv), k(qkv), v(qkv), decay_.data(),
                              nullptr, dims_);
    if (!ex_) return;
    lasp2_add_prefix_dq(ctx_, dq, dout, P_.data(), decay_.data(), dims_);
    const double t0 = MPI_Wtime();
    ex_->end_backward(G_.data());
    exchange_seconds += MPI_Wtime() - t0;
    lasp2_add_suffix_dkdv(ctx_, dk, dv, k(qkv), v(qkv), G_.data(), decay_.data(), dims_);
  }

 private:
  std::unique_ptr<Lasp2StateExchange> ex_;
  std::vector<float> P_, G_;
};

// The library layer as a bare kernel (the validation reference).
class CoreLayer : public ChunkLayer {
 public:
  CoreLayer(Communicator* comm, const LinearAttentionDims& dims, const LinearAttentionSpec& spec)
      : ChunkLayer(dims, spec.decay), core_(ctx_, spec, dims.B, dims.T, comm) {}
  void forward(float* out, const float* qkv) override { core_.forward(out, qkv, nullptr, nullptr, nullptr); }
  void backward(float* dqkv, const float* dout, const float*) override {
    core_.backward(dqkv, nullptr, dout, nullptr, nullptr);
  }

 private:
  LinearAttentionCore core_;
};

struct Args {
  int tokens = 16384, heads = 16, head_dim = 64, batch = 1, block = 64, layers = 1, reps = 5;
  bool ftz = false;
};

LinearAttentionSpec bare_spec(const Args& a, const std::vector<float>& decay) {
  LinearAttentionSpec s;
  s.H = s.KVH = a.heads;
  s.d = a.head_dim;
  s.block = a.block;
  s.feature_map = FeatureMap::identity;
  s.decay = decay;
  s.output_norm = false;
  s.output_gate = false;
  return s;
}

// The tnl decays of layer 0 of a 16-layer model (the fastest-decaying layer).
std::vector<float> tnl_decays(int H) {
  std::vector<float> d(static_cast<size_t>(H));
  for (int h = 0; h < H; ++h) d[static_cast<size_t>(h)] = static_cast<float>(tnl_decay(h, H, 0, 16));
  return d;
}

double max_abs(const std::vector<float>& x) {
  double m = 0;
  for (float e : x) m = std::max(m, static_cast<double>(std::fabs(e)));
  return m;
}

// Normwise relative error max|x - ref| / max|ref|, the worst over all ranks.
double rel_error(const std::vector<float>& x, const std::vector<float>& ref, MPI_Comm comm) {
  double v[2] = {0, max_abs(ref)};
  for (size_t i = 0; i < x.size(); ++i) v[0] = std::max(v[0], std::fabs(static_cast<double>(x[i]) - ref[i]));
  MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_DOUBLE, MPI_MAX, comm);
  return v[1] > 0 ? v[0] / v[1] : v[0];
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

int run(const Args& a, Communicator& world, MPI_Comm ring) {
  const int W = world.size(), rank = world.rank();
  if (a.tokens % W != 0) throw Error(str_cat("--tokens ", a.tokens, " is not divisible by W=", W));
  const int C = a.tokens / W, H = a.heads, d = a.head_dim, QKV = 3 * H * d, Hd = H * d;
  const LinearAttentionDims dims{a.batch, C, H, H, d, a.block, QKV, QKV, QKV, Hd};
  const size_t N = static_cast<size_t>(a.batch) * C;
  std::vector<float> qkv(N * QKV), dout(N * Hd);
  Rng rng(1000 + rank);
  for (auto& e : qkv) e = static_cast<float>(0.5 * rng.normal());
  for (auto& e : dout) e = static_cast<float>(rng.normal());
  const double S = static_cast<double>(a.batch) * H * d * d * 4;
  if (rank == 0)
    std::printf("W=%d ranks (1 thread each), T=%d, C=%d per rank, B=%d H=%d d=%d block=%d, "
                "state S=%.0f KiB, %d layer(s)%s\n",
                W, a.tokens, C, a.batch, H, d, a.block, S / 1024, a.layers, a.ftz ? ", FTZ/DAZ on" : "");

  // Validation against the library core, two decay sets.
  bool ok = true;
  for (const char* which : {"tnl", "none"}) {
    const std::vector<float> decay = !std::strcmp(which, "tnl") ? tnl_decays(H) : std::vector<float>(H, 1.0f);
    const LinearAttentionSpec spec = bare_spec(a, decay);
    Lasp1Layer l1(ring, dims, decay);
    Lasp2Layer l2(&world, dims, decay);
    CoreLayer ref(&world, dims, spec);
    std::vector<float> out_ref(N * Hd), dq_ref(N * QKV), out(N * Hd), dqkv(N * QKV);
    ref.forward(out_ref.data(), qkv.data());
    ref.backward(dq_ref.data(), dout.data(), qkv.data());
    for (ChunkLayer* layer : {static_cast<ChunkLayer*>(&l1), static_cast<ChunkLayer*>(&l2)}) {
      layer->forward(out.data(), qkv.data());
      layer->backward(dqkv.data(), dout.data(), qkv.data());
      const double eo = rel_error(out, out_ref, ring), eg = rel_error(dqkv, dq_ref, ring);
      const bool pass = eo <= 1e-5 && eg <= 1e-5;  // fp32 reassociation of a W-term sum
      ok = ok && pass;
      if (rank == 0)
        std::printf("  validate %-6s decay %-4s vs LinearAttentionCore: out %.2e, dqkv %.2e  %s\n",
                    layer == &l1 ? "LASP-1" : "LASP-2", which, eo, eg, pass ? "ok" : "FAIL (> 1e-5)");
    }
  }
  if (!ok) {
    if (rank == 0) std::fprintf(stderr, "bench_lasp1_vs_lasp2: VALIDATION FAILED\n");
    return 1;
  }

  // Timing, tnl decays.
  const std::vector<float> decay = tnl_decays(H);
  std::vector<std::unique_ptr<ChunkLayer>> l1, l2, core;
  for (int l = 0; l < a.layers; ++l) {
    l1.push_back(std::make_unique<Lasp1Layer>(ring, dims, decay));
    l2.push_back(std::make_unique<Lasp2Layer>(&world, dims, decay));
    core.push_back(std::make_unique<CoreLayer>(&world, dims, bare_spec(a, decay)));
  }
  std::vector<float> out(N * Hd), dqkv(N * QKV);
  auto step = [&](std::vector<std::unique_ptr<ChunkLayer>>& layers) {
    for (auto& l : layers) l->forward(out.data(), qkv.data());
    for (size_t i = layers.size(); i-- > 0;) layers[i]->backward(dqkv.data(), dout.data(), qkv.data());
  };
  std::vector<std::vector<std::unique_ptr<ChunkLayer>>*> variants = {&l1, &l2, &core};
  std::vector<std::vector<double>> times(3), exch(3);
  for (int r = -1; r < a.reps; ++r)
    for (size_t v = 0; v < variants.size(); ++v) {
      for (auto& l : *variants[v]) l->exchange_seconds = 0;
      MPI_Barrier(ring);
      const double t0 = MPI_Wtime();
      step(*variants[v]);
      double t[2] = {MPI_Wtime() - t0, 0};
      for (auto& l : *variants[v]) t[1] += l->exchange_seconds;
      MPI_Allreduce(MPI_IN_PLACE, t, 2, MPI_DOUBLE, MPI_MAX, ring);
      if (r >= 0) times[v].push_back(t[0]), exch[v].push_back(t[1]);
    }

  // The exchanges alone at this W.
  std::vector<double> chain, gather;
  if (W > 1) {
    std::vector<float> all(static_cast<size_t>(W) * static_cast<size_t>(S / 4)), mine(static_cast<size_t>(S / 4), 1.0f);
    auto* lasp1 = static_cast<Lasp1Layer*>(l1[0].get());
    for (int r = 0; r < 21; ++r) {
      MPI_Barrier(ring);
      double t0 = MPI_Wtime();
      lasp1->chain_only();
      double t = MPI_Wtime() - t0;
      MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, ring);
      chain.push_back(t);
      MPI_Barrier(ring);
      t0 = MPI_Wtime();
      world.all_gather(mine.data(), all.data(), mine.size());
      t = MPI_Wtime() - t0;
      MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, ring);
      gather.push_back(t);
    }
  }

  if (rank == 0) {
    const char* names[3] = {"LASP-1 ring (bench)", "LASP-2 AllGather (bench)", "LASP-2 LinearAttentionCore"};
    std::printf("  %-28s %12s %12s %16s %10s\n", "fwd+bwd, slowest rank", "median ms", "best ms",
                "exchange ms (med)", "tok/s");
    for (int v = 0; v < 3; ++v)
      std::printf("  %-28s %12.2f %12.2f %16.2f %10.0f\n", names[v], 1e3 * median(times[v]),
                  1e3 * *std::min_element(times[v].begin(), times[v].end()), 1e3 * median(exch[v]),
                  a.tokens / median(times[v]));
    std::printf("  LASP-2 (bench) step-time advantage over LASP-1: %+.2f%% (median), %+.2f%% (best)\n",
                100.0 * (median(times[0]) / median(times[1]) - 1.0),
                100.0 * (*std::min_element(times[0].begin(), times[0].end()) /
                             *std::min_element(times[1].begin(), times[1].end()) - 1.0));
    if (W > 1)
      std::printf("  exchange alone, median of 21: LASP-1 chain of %d hops %.3f ms, one MPI allgather of "
                  "%.0f KiB per rank %.3f ms\n",
                  W - 1, 1e3 * median(chain), S / 1024, 1e3 * median(gather));
    std::printf("RESULT W=%d T=%d lasp1_ms=%.2f lasp2_ms=%.2f core_ms=%.2f lasp1_exch_ms=%.2f lasp2_exch_ms=%.2f "
                "chain_ms=%.3f allgather_ms=%.3f\n",
                W, a.tokens, 1e3 * median(times[0]), 1e3 * median(times[1]), 1e3 * median(times[2]),
                1e3 * median(exch[0]), 1e3 * median(exch[1]), W > 1 ? 1e3 * median(chain) : 0.0,
                W > 1 ? 1e3 * median(gather) : 0.0);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  select_blas_kernels(argc, argv);
  Args a;
  for (int i = 1; i < argc; ++i) {
    auto next = [&] { return i + 1 < argc ? std::atoi(argv[++i]) : (std::fprintf(stderr, "missing value\n"), std::exit(2), 0); };
    if (!std::strcmp(argv[i], "--tokens")) a.tokens = next();
    else if (!std::strcmp(argv[i], "--heads")) a.heads = next();
    else if (!std::strcmp(argv[i], "--head-dim")) a.head_dim = next();
    else if (!std::strcmp(argv[i], "--batch")) a.batch = next();
    else if (!std::strcmp(argv[i], "--block")) a.block = next();
    else if (!std::strcmp(argv[i], "--layers")) a.layers = next();
    else if (!std::strcmp(argv[i], "--reps")) a.reps = next();
    else if (!std::strcmp(argv[i], "--ftz")) a.ftz = true;
    else { std::fprintf(stderr, "unknown argument %s\n", argv[i]); return 2; }
  }
  MpiRuntime mpi(&argc, &argv);
  try {
    set_num_threads(1);  // one core per rank, as SP ranks run in training
    if (a.ftz) _mm_setcsr(_mm_getcsr() | 0x8040);  // FTZ | DAZ
    auto world = mpi.world();
    MPI_Comm ring;
    LT_MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &ring));
    const int rc = run(a, *world, ring);
    MPI_Comm_free(&ring);
    return rc;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_lasp1_vs_lasp2: error (rank %d): %s\n", mpi.rank(), e.what());
    MpiRuntime::abort(1);
  }
}
