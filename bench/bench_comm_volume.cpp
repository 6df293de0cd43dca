// Per-layer communication volume of sequence parallelism: bytes each SP rank
// hands to collectives in one forward + backward of one attention layer core,
// linear attention (LASP-2) against softmax attention (LASP-2H), measured from
// every rank's CommStats and checked against the closed forms of
// docs/lasp2.md (the math):
//   linear   forward  all-gather      B*H*d*d*4 bytes               (independent of T)
//            backward all-gather      B*H*d*d*4 bytes
//   softmax  forward  all-gather      2*B*C*KVH*d*4 bytes            C = T / W
//            backward reduce-scatter  W * 2*B*C*KVH*d*4 bytes        (send buffer, W chunks)
// The SP group is W threads of this process (parallel/thread_communicator.h),
// each rank running the real layer core on its own chunk with random inputs.
// A row PASSes when every rank's counters equal the formula exactly (bytes
// and number of calls, and no other collective was used); any FAIL exits 1.
//   usage: bench_comm_volume [--sp 2,4,8] [--tokens 8192,32768] [--hidden 1024]
//                            [--heads 16] [--kv-heads 16] [--batch 1]
// Runtime on 2 cores: about 6 minutes, nearly all of it the three causal
// softmax layers at T = 32K (7.7 TFLOP each); --tokens 8192 takes ~30 s.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "layers/linear_attention.h"
#include "layers/softmax_attention.h"
#include "parallel/thread_communicator.h"
#include "runtime/cpu/gemm.h"
#include "runtime/rng.h"

using namespace lintrain;

namespace {

std::vector<int> parse_list(const char* s) {
  std::vector<int> v;
  for (const char* p = s; *p;) {
    v.push_back(std::atoi(p));
    while (*p && *p != ',') ++p;
    if (*p == ',') ++p;
  }
  return v;
}

void fill_normal(std::vector<float>& x, size_t n, uint64_t seed) {
  Rng rng(seed);
  x.resize(n);
  for (auto& e : x) e = static_cast<float>(rng.normal());
}

// One rank's counters after forward and after backward.
struct RankBytes {
  CommStats fwd, total;
};

struct Row {
  std::vector<RankBytes> ranks;
  double seconds = 0;
};

// Runs one forward + backward of the layer kind ('L' or 'S') on W thread ranks.
Row run_layer(char kind, const ModelConfig& m, int B, int T, int W) {
  const int C = T / W;
  Row row;
  row.ranks.resize(static_cast<size_t>(W));
  // Every rank may use every core: causal softmax work is uneven (rank j
  // attends to j+1 chunks), and a rank that finishes early sleeps in its
  // collective, leaving the cores to the busy ones.
  const int threads_per_rank = num_threads();
  const auto t0 = std::chrono::steady_clock::now();
  run_ranks(W, [&](Communicator& comm) {
    set_num_threads(threads_per_rank);
    const int r = comm.rank();
    const int H = m.num_attention_heads, KVH = m.kv_heads(), d = m.head_dim();
    const size_t N = static_cast<size_t>(B) * C, qkvw = static_cast<size_t>(H + 2 * KVH) * d,
                 Hd = static_cast<size_t>(H) * d;
    std::vector<float> qkv, g, dout, out(N * Hd), dqkv(N * qkvw), dg(N * Hd);
    fill_normal(qkv, N * qkvw, 100 + r);
    fill_normal(g, N * Hd, 200 + r);
    fill_normal(dout, N * Hd, 300 + r);
    comm.reset_stats();
    RankBytes& rb = row.ranks[static_cast<size_t>(r)];
    Arena arena;  // this rank's scratch, reserved by the core
    Context ctx;
    ctx.scratch = &arena;
    if (kind == 'L') {
      LinearAttentionCore core(ctx, make_linear_attention_spec(m, 0), B, C, &comm);
      core.forward(out.data(), qkv.data(), g.data(), nullptr, nullptr);
      rb.fwd = comm.stats();
      core.backward(dqkv.data(), dg.data(), dout.data(), nullptr, nullptr);
    } else {
      SoftmaxAttentionCore core(ctx, m, B, C, &comm);
      core.forward(out.data(), qkv.data(), 0);
      rb.fwd = comm.stats();
      core.backward(dqkv.data(), dout.data());
    }
    rb.total = comm.stats();
  });
  row.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return row;
}

unsigned long long ull(uint64_t x) { return static_cast<unsigned long long>(x); }

std::string mib(uint64_t bytes) {
  char buf[64];
  if (bytes < (1u << 20)) std::snprintf(buf, sizeof buf, "%.0f KiB", bytes / 1024.0);
  else std::snprintf(buf, sizeof buf, "%.1f MiB", bytes / 1048576.0);
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  select_blas_kernels(argc, argv);
  std::vector<int> sps = {2, 4, 8}, tokens = {8192, 32768};
  int hidden = 1024, heads = 16, kv_heads = 16, batch = 1;
  for (int i = 1; i < argc; ++i) {
    auto next = [&] { return i + 1 < argc ? argv[++i] : (std::fprintf(stderr, "missing value\n"), std::exit(2), argv[0]); };
    if (!std::strcmp(argv[i], "--sp")) sps = parse_list(next());
    else if (!std::strcmp(argv[i], "--tokens")) tokens = parse_list(next());
    else if (!std::strcmp(argv[i], "--hidden")) hidden = std::atoi(next());
    else if (!std::strcmp(argv[i], "--heads")) heads = std::atoi(next());
    else if (!std::strcmp(argv[i], "--kv-heads")) kv_heads = std::atoi(next());
    else if (!std::strcmp(argv[i], "--batch")) batch = std::atoi(next());
    else { std::fprintf(stderr, "unknown argument %s\n", argv[i]); return 2; }
  }
  ModelConfig m;
  m.hidden_size = hidden;
  m.num_attention_heads = heads;
  m.num_key_value_heads = kv_heads;
  m.num_hidden_layers = 1;
  m.linear_attention.variant = "lightning";
  const uint64_t B = batch, H = heads, KVH = m.kv_heads(), d = m.head_dim();
  std::printf("layer: hidden %d, H %d, KVH %d, d %d, B %d (lightning linear core; softmax core with RoPE)\n",
              hidden, heads, static_cast<int>(KVH), static_cast<int>(d), batch);
  std::printf("bytes = what one rank hands to collectives in one forward + backward (CommStats)\n\n");
  std::printf("| layer | SP | T | C = T/SP | fwd bytes measured | fwd formula | bwd bytes measured | bwd formula | "
              "total/rank | check | run s |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
  bool all_pass = true;
  for (int T : tokens)
    for (int W : sps) {
      if (T % W != 0) {
        std::fprintf(stderr, "T=%d is not divisible by SP=%d\n", T, W);
        return 2;
      }
      const uint64_t C = static_cast<uint64_t>(T / W);
      for (char kind : {'L', 'S'}) {
        const Row row = run_layer(kind, m, batch, T, W);
        // Formula (bytes, calls) per direction.
        uint64_t fwd_f, bwd_f;
        if (kind == 'L') fwd_f = bwd_f = B * H * d * d * 4;
        else fwd_f = 2 * B * C * KVH * d * 4, bwd_f = W * fwd_f;
        bool pass = true;
        uint64_t fwd_m = 0, bwd_m = 0;
        for (const RankBytes& rb : row.ranks) {
          const CommStats& f = rb.fwd;
          const CommStats& t = rb.total;
          const uint64_t fwd = f.all_gather_bytes;
          const uint64_t bwd = kind == 'L' ? t.all_gather_bytes - f.all_gather_bytes : t.reduce_scatter_bytes;
          const uint64_t bwd_calls = kind == 'L' ? t.all_gather_calls - f.all_gather_calls : t.reduce_scatter_calls;
          const uint64_t other = t.all_reduce_bytes + t.broadcast_bytes + f.reduce_scatter_bytes +
                                 (kind == 'S' ? t.all_gather_bytes - f.all_gather_bytes : t.reduce_scatter_bytes);
          pass = pass && fwd == fwd_f && bwd == bwd_f && f.all_gather_calls == 1 && bwd_calls == 1 && other == 0;
          fwd_m = std::max(fwd_m, fwd), bwd_m = std::max(bwd_m, bwd);  // equal on every rank when PASS
        }
        all_pass = all_pass && pass;
        std::printf("| %s | %d | %d | %d | %llu | %llu | %llu | %llu | %s | %s | %.1f |\n",
                    kind == 'L' ? "linear (LASP-2)" : "softmax (LASP-2H)", W, T, static_cast<int>(C),
                    ull(fwd_m), ull(fwd_f), ull(bwd_m), ull(bwd_f),
                    mib(fwd_m + bwd_m).c_str(), pass ? "PASS" : "FAIL", row.seconds);
        std::fflush(stdout);
      }
    }
  std::printf("\n%s\n", all_pass ? "ALL PASS: every rank's bytes and calls equal the formulas"
                                  : "FAIL: some rank's counters differ from the formulas");
  return all_pass ? 0 : 1;
}
