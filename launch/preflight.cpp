#include "launch/preflight.h"

#include <omp.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string_view>

#include "layers/model.h"
#include "optim/param_groups.h"
#include "runtime/checkpoint/checksum.h"
#include "runtime/data/data_loader.h"
#include "runtime/error.h"
#include "runtime/host_staging.h"
#include "runtime/io/file_lock.h"
#include "runtime/io/input_file.h"
#include "runtime/ops.h"
#include "runtime/io/mapped_file.h"

namespace lintrain {

namespace {

// The resolved config as every rank must have it: the YAML without its first
// line (a comment naming the file it came from, which may differ between
// ranks of an MPMD job with equal settings), then the --init-from file's
// size and digest (its contents matter, not its name).
std::string agreement_text(const RunConfig& cfg, const std::string& init_from) {
  std::string yaml = config_to_yaml(cfg);
  yaml.erase(0, yaml.find('\n') + 1);
  std::string init = "none";
  if (!init_from.empty()) {
    const MappedFile f = MappedFile::open(init_from, false, "--init-from file");
    init = str_cat(f.size(), " bytes, xxh3 ", xxh3_hex(xxh3_of(f.data(), f.size())));
  }
  // The file's name follows the compared part (see compared_part).
  return str_cat(yaml, "#init-from\t", init, "\n#path\t", init_from, "\n");
}

// What must be equal: everything before the --init-from file's name.
std::string_view compared_part(const std::string& text) {
  return std::string_view(text).substr(0, text.rfind("#path\t"));
}

std::string init_path(const std::string& text) {
  const size_t at = text.rfind("#path\t");
  return at == std::string::npos ? "" : text.substr(at + 6, text.find('\n', at) - at - 6);
}

// One 64-bit digest per rank, through a float all-gather: four exact 16-bit pieces each.
std::vector<uint64_t> gather_digests(uint64_t mine, Communicator& world) {
  const int n = world.size();
  float send[4];
  for (int i = 0; i < 4; ++i) send[i] = static_cast<float>((mine >> (16 * i)) & 0xffff);
  std::vector<float> recv(static_cast<size_t>(4 * n));
  world.all_gather(send, recv.data(), 4);
  std::vector<uint64_t> out(static_cast<size_t>(n));
  for (int r = 0; r < n; ++r)
    for (int i = 0; i < 4; ++i)
      out[static_cast<size_t>(r)] |= static_cast<uint64_t>(recv[static_cast<size_t>(4 * r + i)]) << (16 * i);
  return out;
}

std::string broadcast_text(const std::string& mine, int root, Communicator& world) {
  uint64_t len = mine.size();
  world.broadcast(&len, sizeof len, root);
  std::string text = world.rank() == root ? mine : std::string(static_cast<size_t>(len), '\0');
  world.broadcast(text.data(), text.size(), root);
  return text;
}

std::string init_line(const std::string& text) {
  const size_t at = text.rfind("#init-from\t");
  return at == std::string::npos ? "" : text.substr(at + 11, text.find('\n', at) - at - 11);
}

std::string gib(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GiB", bytes / (1024.0 * 1024.0 * 1024.0));
  return buf;
}

// A "Key: <n> kB" line of /proc/meminfo, in bytes; negative when absent.
double meminfo_bytes(const char* key) {
  std::ifstream in("/proc/meminfo");
  std::string line;
  const size_t n = std::strlen(key);
  while (std::getline(in, line))
    if (line.compare(0, n, key) == 0 && line.size() > n && line[n] == ':') return std::atof(line.c_str() + n + 1) * 1024.0;
  return -1;
}

double file_number(const std::string& path) {
  std::ifstream in(path);
  std::string s;
  if (!(in >> s) || s == "max") return -1;
  return std::atof(s.c_str());
}

// This process's cgroup (v2: one "0::/path" line), for its memory limit.
std::string cgroup_dir() {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line))
    if (line.compare(0, 3, "0::") == 0) return "/sys/fs/cgroup" + line.substr(3);
  return "";
}

double mapped_bytes() {
  std::ifstream in("/proc/self/statm");
  double pages = 0;
  in >> pages;
  return pages * static_cast<double>(sysconf(_SC_PAGESIZE));
}

}  // namespace

void check_ranks_agree(const RunConfig& cfg, const std::string& init_from, Communicator& world) {
  if (world.size() == 1) return;
  const std::string mine = agreement_text(cfg, init_from);
  const std::string_view compared = compared_part(mine);
  const std::vector<uint64_t> digests = gather_digests(xxh3_of(compared.data(), compared.size()), world);
  std::vector<int> differ;
  for (int r = 1; r < world.size(); ++r)
    if (digests[static_cast<size_t>(r)] != digests[0]) differ.push_back(r);
  if (differ.empty()) return;
  // Every rank learns rank 0's and the first differing rank's settings, so
  // every rank stops with the same message.
  const int other = differ[0];
  const std::string first = broadcast_text(mine, 0, world);
  const std::string theirs = broadcast_text(mine, other, world);
  std::string ranks;
  for (size_t i = 0; i < differ.size() && i < 8; ++i) ranks += str_cat(i ? ", " : "", differ[i]);
  if (differ.size() > 8) ranks += ", ...";
  std::string what;
  const std::vector<ConfigChange> changes = config_changes(first, theirs);
  for (size_t i = 0; i < changes.size() && i < 6; ++i)
    what += str_cat(i ? "; " : "", changes[i].key, " is ", changes[i].before, " on rank 0 but ", changes[i].after,
                    " on rank ", other);
  if (changes.size() > 6) what += str_cat("; and ", changes.size() - 6, " more keys");
  auto init_text = [](const std::string& t) {
    return init_path(t).empty() ? std::string("not given") : str_cat(init_path(t), " (", init_line(t), ")");
  };
  if (init_line(first) != init_line(theirs))
    what += str_cat(what.empty() ? "" : "; ", "--init-from is ", init_text(first), " on rank 0 but ",
                    init_text(theirs), " on rank ", other);
  if (what.empty()) what = "their resolved run files differ";
  throw ConfigError(str_cat("the ranks were started with different settings: rank", differ.size() > 1 ? "s " : " ",
                            ranks, differ.size() > 1 ? " differ" : " differs", " from rank 0 (", what, "). Every rank of a job must run the same run "
                            "file with the same --set overrides and --init-from file; start them with one command"));
}

void check_data_agrees(const DataLoader& train, const std::string& source, Communicator& world) {
  if (world.size() == 1) return;
  const std::string mine = train.fingerprint();
  const std::vector<uint64_t> digests = gather_digests(xxh3_of(mine.data(), mine.size()), world);
  int other = -1;
  for (int r = 1; r < world.size() && other < 0; ++r)
    if (digests[static_cast<size_t>(r)] != digests[0]) other = r;
  if (other < 0) return;
  const std::string first = broadcast_text(mine, 0, world), theirs = broadcast_text(mine, other, world);
  throw ConfigError(str_cat("the ranks loaded different training data: ", source, " holds ", first,
                            " on rank 0 but ", theirs, " on rank ", other, ". The same path names different files "
                            "on these ranks (another node's copy, another working directory); give every rank the "
                            "same data"));
}

void check_replicas_equal(const FlatBuffer& params, Communicator& world, const std::string& when) {
  if (world.size() == 1) return;
  HostStaging host;  // weights on a GPU are hashed from a host copy
  const float* all = host.read(Context{params.device(), nullptr, nullptr}, params.data(), params.numel());
  const uint64_t mine = xxh3_of(all, static_cast<size_t>(params.numel()) * sizeof(float));
  const std::vector<uint64_t> digests = gather_digests(mine, world);
  std::string differ;
  for (int r = 1; r < world.size(); ++r)
    if (digests[static_cast<size_t>(r)] != digests[0]) differ += str_cat(differ.empty() ? "" : ", ", r);
  if (!differ.empty())
    throw Error(str_cat("the weights of rank(s) ", differ, " differ from rank 0's ", when,
                        " (xxh3 ", xxh3_hex(digests[0]), " on rank 0); every rank must start from the same weights. "
                        "This is a bug or a rank-local input (a different --init-from file or checkpoint directory "
                        "per node?); please report it with the run file"));
}

namespace {

// The ops' scratch arena as the model reserves it: the most that one op of
// the step takes (runtime/ops.h's *_scratch_bytes, for this process's thread
// count), on the last SP rank (whose softmax layers see every key). Sizes
// beyond int are estimated by the same per-thread formulas in double: such a
// run is refused anyway, by its activations.
double op_scratch_bytes(const RunConfig& cfg, int sp_size) {
  const ModelConfig& m = cfg.model;
  const int W = std::max(1, sp_size);
  const double T = static_cast<double>(cfg.data.seq_len) / W, B = cfg.train.micro_batch;
  const double d = m.head_dim(), threads = omp_get_max_threads(), block = std::min<double>(m.linear_attention.block_size, T);
  const bool linear = m.layer_pattern.find('L') != std::string::npos, softmax = m.layer_pattern.find('S') != std::string::npos;
  if (B * T * W * m.hidden_size > 2e9 || d * d * B * m.num_attention_heads > 2e9) {
    const double attn = softmax ? 2 * 64 * T * W * threads : 0;
    const double lin = linear ? (2 * block * block + block * d + d * d + 2 * block + 1) * threads : 0;
    return 4 * std::max(attn, lin);
  }
  const int Bi = cfg.train.micro_batch, Ti = cfg.data.seq_len / W, di = m.head_dim();
  const int H = m.num_attention_heads, KVH = m.kv_heads(), Wq = (H + 2 * KVH) * di;
  size_t bytes = rmsnorm_backward_scratch_bytes(Device::CPU, Bi * Ti, m.hidden_size);
  if (softmax) {
    AttentionDims a;
    a.B = Bi, a.Tq = Ti, a.Tk = W * Ti, a.H = H, a.KVH = KVH, a.d = di, a.q_offset = (W - 1) * Ti;
    bytes = std::max({bytes, softmax_attention_forward_scratch_bytes(Device::CPU, a),
                      softmax_attention_backward_scratch_bytes(Device::CPU, a)});
  }
  if (linear) {
    const LinearAttentionDims l{Bi, Ti, H, KVH, di, static_cast<int>(block), Wq, Wq, Wq, H * di};
    bytes = std::max({bytes, linear_attention_forward_scratch_bytes(Device::CPU, l),
                      linear_attention_backward_scratch_bytes(Device::CPU, l)});
    if (W > 1)
      bytes = std::max({bytes, lasp2_terms_scratch_bytes(Device::CPU, l),
                        lasp2_merge_states_scratch_bytes(Device::CPU, Bi, H, di)});
  }
  return static_cast<double>(bytes);
}

}  // namespace

RunMemory estimate_run_memory(const RunConfig& cfg, int sp_size) {
  const ModelConfig& m = cfg.model;
  // In double, from counts (no loop over layers, no table): a config's sizes
  // may overflow 64-bit products or name a billion layers, and such a config
  // must be refused, not wrapped or slowly enumerated.
  const double B = cfg.train.micro_batch, T = static_cast<double>(cfg.data.seq_len) / std::max(1, sp_size);
  const double N = B * T, C = m.hidden_size, F = m.intermediate_size, V = m.vocab_size;
  const double d = m.head_dim(), H = m.num_attention_heads, KVH = m.kv_heads();
  const double HD = H * d, QKV = HD + 2 * KVH * d, W = sp_size;
  const int L = m.num_hidden_layers, len = static_cast<int>(m.layer_pattern.size());
  auto linear_in = [&](int n) { return static_cast<double>(std::count(m.layer_pattern.begin(), m.layer_pattern.begin() + n, 'L')); };
  const double linear = len > 0 ? (L / len) * linear_in(len) + linear_in(L % len) : 0, softmax = L - linear;
  const LinearAttentionConfig& la = m.linear_attention;
  const bool gate = la.output_gate == 1 || (la.output_gate == -1 && la.variant != "basic");
  // Per layer: parameters, then the tensors saved for backward (the block's
  // and its attention core's, as LinearLlama and the cores allocate them).
  const double block_params = 2 * C + (QKV + HD) * C + 3 * F * C;
  const double block_saved = 4 * N * C + 2 * N + N * QKV + N * HD + 3 * N * F;
  const double linear_saved = N * HD * (gate ? 1 : 0) + N * QKV + N * (H + KVH) * d + 2 * N * HD + N * H +
                              (gate ? N * HD : 0) + B * H * d * d * (W > 1 ? 3 + W : 1);
  const double softmax_saved = N * QKV + N * HD + N * H + (W > 1 ? N * 2 * KVH * d * (4 * W + 1) : 0);
  // gla: the low-rank forget gate (R x C, HD x R, bias HD); saved its input
  // projection (N R), log gates (N HD) and the core's copy of them.
  const double R = la.variant == "gla" ? la.gate_rank : 0;
  const double forget_params = R > 0 ? R * C + HD * R + HD : 0, forget_saved = R > 0 ? N * R + 2 * N * HD : 0;
  const double P = V * C * (m.tie_word_embeddings ? 1 : 2) + C + L * block_params +
                   linear * ((gate ? HD * C : 0) + forget_params);
  double act = L * block_saved + linear * (linear_saved + forget_saved) + softmax * softmax_saved;
  // The model's backward workspaces and the loss head's logits (a chunk of tokens).
  act += 5 * N * C + 2 * N + 3 * N * F + N * HD * (gate ? 2 : 1) + N * QKV + std::min(N, 4096.0) * V;
  RunMemory r;
  r.weights = r.grads = 4 * P;
  r.compute_copy = cfg.precision.compute == "bf16" ? 4 * P : 0;
  // The optimizer's own plan when the model is of a size one can list;
  // else AdamW's two moments (the most any optimizer here keeps).
  if (L <= 100000 && r.weights < 1e13) {
    const ParamTable table = make_param_table(m);
    r.optimizer = 4.0 * static_cast<double>(plan_optimizer_memory(cfg.optim, table).state_floats);
  } else {
    r.optimizer = 8 * P;
  }
  // The step's micro-batches are loaded before its first forward (inputs and
  // targets, int32, this rank's chunk of each), and the model's copy of one.
  act += 2 * static_cast<double>(cfg.train.grad_accum) * N + 2 * N;
  r.activations = 4 * act + op_scratch_bytes(cfg, sp_size);
  // The checkpoint staging buffer (periodic saves) holds weights and optimizer state.
  r.staging = cfg.checkpoint.every > 0 ? r.weights + r.optimizer : 0;
  return r;
}

double available_memory_bytes(std::string* source) {
  double best = -1;
  auto take = [&](double v, const char* what) {
    if (v >= 0 && (best < 0 || v < best)) {
      best = v;
      if (source) *source = what;
    }
  };
  take(meminfo_bytes("MemAvailable"), "MemAvailable in /proc/meminfo");
  const std::string cg = cgroup_dir();
  if (!cg.empty()) {
    const double max = file_number(cg + "/memory.max"), cur = file_number(cg + "/memory.current");
    if (max >= 0 && cur >= 0) take(max - cur, "the cgroup's memory.max less memory.current");
  }
  struct rlimit rl;
  if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
    take(static_cast<double>(rl.rlim_cur) - mapped_bytes(), "ulimit -v (RLIMIT_AS) less what is mapped");
  if (getrlimit(RLIMIT_DATA, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
    take(static_cast<double>(rl.rlim_cur) - mapped_bytes(), "ulimit -d (RLIMIT_DATA) less what is mapped");
  return best;
}

void check_memory_fits(const RunConfig& cfg, int sp_size, int local_ranks) {
  const RunMemory m = estimate_run_memory(cfg, sp_size);
  std::string source;
  const double avail = available_memory_bytes(&source);
  const double need = m.total() * std::max(1, local_ranks);
  if (avail < 0 || need <= avail) return;
  const double model_state = m.weights + m.grads + m.compute_copy + m.optimizer + m.staging;
  std::string fix;
  if (m.activations >= 0.4 * m.total())
    fix = "most of it is activations: lower train.micro_batch (raise train.grad_accum to keep the batch) or "
          "data.seq_len, or split the sequence over more ranks (parallel.sequence)";
  else
    fix = str_cat("most of it is the model's own state: use a smaller model (model.hidden_size, num_hidden_layers, "
                  "intermediate_size, vocab_size)",
                  m.optimizer >= 0.3 * model_state ? ", an optimizer with less state (lion, galore, frugal)" : "",
                  m.staging > 0 ? ", or save checkpoints only on a signal (checkpoint.every: 0)" : "");
  throw ConfigError(str_cat(
      "the run needs about ", gib(m.total()), " per rank",
      local_ranks > 1 ? str_cat(" (", local_ranks, " ranks on this node: ", gib(need), ")") : "", " but this machine has ",
      gib(avail), " available (", source, "): weights ", gib(m.weights), ", gradients ", gib(m.grads),
      m.compute_copy > 0 ? str_cat(", bf16 compute copy ", gib(m.compute_copy)) : "", ", optimizer state ",
      gib(m.optimizer), " (optim.name ", cfg.optim.name, "), activations ", gib(m.activations), " (train.micro_batch ",
      cfg.train.micro_batch, " x data.seq_len ", cfg.data.seq_len,
      sp_size > 1 ? str_cat(" / parallel.sequence ", sp_size) : "", ")",
      m.staging > 0 ? str_cat(", checkpoint staging ", gib(m.staging)) : "", ". The model: model.hidden_size ",
      cfg.model.hidden_size, ", num_hidden_layers ", cfg.model.num_hidden_layers, ", intermediate_size ",
      cfg.model.intermediate_size, ", vocab_size ", cfg.model.vocab_size, "; ", fix));
}

int threads_per_rank(const RunConfig& cfg, int local_ranks) {
  const int cores = omp_get_num_procs();  // the CPUs this process may run on
  int threads = 0;
  std::string from;
  if (cfg.run.threads > 0) {
    threads = cfg.run.threads;
    from = "run.threads";
  } else if (const char* env = std::getenv("OMP_NUM_THREADS"); env && *env) {
    // A count, or OpenMP's list of counts per nesting level ("4,2"): the
    // first is this rank's. Anything else would be ignored without a word.
    char* end = nullptr;
    const long n = std::strtol(env, &end, 10);
    if (end == env || n <= 0 || n > INT_MAX || (*end != '\0' && *end != ','))
      throw ConfigError(str_cat("OMP_NUM_THREADS = '", env, "' is not a positive thread count; set it to a number ",
                                "such as ", std::max(1, cores / std::max(1, local_ranks)),
                                ", or unset it (or set run.threads) to let lintrain choose"));
    threads = static_cast<int>(n);
    from = "OMP_NUM_THREADS";
  } else {
    return std::max(1, cores / std::max(1, local_ranks));
  }
  // More threads than cores only slows a rank (each GEMM waits for its
  // slowest thread); far more (thousands) exhausts memory inside OpenBLAS.
  const int limit = 2 * cores;
  if (threads > limit)
    throw ConfigError(str_cat(from, " = ", threads, " is far above the ", cores, " cores this rank may use (at most ",
                              limit, " is accepted); use ", std::max(1, cores / std::max(1, local_ranks)),
                              " (the cores per rank), or 0 to let lintrain choose"));
  return threads;
}

void check_tmpdir() {
  const char* env = std::getenv("TMPDIR");
  const std::string dir = env && *env ? env : "/tmp";
  const std::string name = env && *env ? "TMPDIR" : "/tmp (TMPDIR is unset)";
  const std::string fix = "; set TMPDIR to a writable directory (e.g. export TMPDIR=/tmp) before starting lintrain";
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0)
    throw Error(str_cat(name, " = '", dir, "': ", std::strerror(errno), "; MPI keeps its session files there", fix));
  if (!S_ISDIR(st.st_mode))
    throw Error(str_cat(name, " = '", dir, "' is not a directory; MPI keeps its session files there", fix));
  if (::access(dir.c_str(), W_OK | X_OK) != 0)
    throw Error(str_cat(name, " = '", dir, "' is not writable (", std::strerror(errno),
                        "); MPI keeps its session files there", fix));
}

void check_file_size_limit() {
  struct rlimit rl;
  if (::getrlimit(RLIMIT_FSIZE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= kMinFileSizeLimit) return;
  throw Error(str_cat("the file-size limit is ulimit -f = ", rl.rlim_cur / 1024, " blocks of 1 KiB (", rl.rlim_cur,
                      " bytes): MPI's shared-memory segment alone needs ", kMinFileSizeLimit / 1024, " blocks and ",
                      "each checkpoint file needs its size; raise it (ulimit -f ", kMinFileSizeLimit / 1024,
                      " at least, or ulimit -f unlimited) before starting lintrain"));
}

// Rank 0 takes run.out_dir: creates it (saying why it cannot), locks it for
// the run's life and checks that the files the run writes at its end can be
// written, so that no run trains for hours and then fails at its export.
std::unique_ptr<FileLock> claim_out_dir(const std::string& dir) {
  create_output_dir(dir, "run.out_dir");
  std::string holder;
  auto lock = FileLock::try_lock(dir + "/.lintrain.lock", str_cat("lintrain train, ", this_process_description()),
                                 &holder);
  if (!lock)
    throw IoError(str_cat("run.out_dir '", dir, "' is in use by another run (",
                          holder.empty() ? std::string("a lintrain process") : holder,
                          "); two runs cannot share a run folder: wait for it, stop it, or choose another "
                          "run.out_dir"));
  for (const char* name : {"model.safetensors", "config.json", "config.yaml", "metrics.jsonl"}) {
    const std::string path = dir + "/" + name;
    struct stat st;
    if (::lstat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
      throw IoError(str_cat("'", path, "' is ", non_regular_kind(st.st_mode),
                            ": the run writes a file there; remove it or choose another run.out_dir"));
  }
  return lock;
}

// An evaluation of more batches than the validation split holds repeats
// windows: it costs time and weighs some of them twice. Refused, naming the
// largest value that sees each window once.
void check_eval_batches(const RunConfig& cfg, const DataLoader& valid) {
  const uint64_t windows = valid.distinct_sequences();
  if (windows == 0) return;
  const uint64_t per_batch = static_cast<uint64_t>(valid.batch_size()) * static_cast<uint64_t>(valid.dp_size());
  const uint64_t most = (windows + per_batch - 1) / per_batch;
  if (static_cast<uint64_t>(cfg.train.eval_batches) > most)
    throw ConfigError(str_cat("train.eval_batches = ", cfg.train.eval_batches, " is more than the validation split "
                              "holds: ", windows, " windows of data.seq_len = ", valid.seq_len(), " tokens, ",
                              per_batch, " per evaluation batch (train.micro_batch x parallel.data), so ", most,
                              " batch", most == 1 ? "" : "es", " see", most == 1 ? "s" : "", " each once; set "
                              "train.eval_batches <= ", most, " or raise data.valid_fraction"));
}

}  // namespace lintrain
