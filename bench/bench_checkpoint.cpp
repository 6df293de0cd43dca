// Checkpoint cost, measured in one process on one disk:
//   1. the training stall of asynchronous saves (save() + fence(), and how
//      much the steps slow down while the background write runs) against a
//      synchronous save of the same state;
//   2. save and restore MB/s against the raw sequential write (with fsync)
//      and read speed of the same disk, measured in the same run.
// The model trains for real (forward, backward, AdamW on synthetic tokens),
// so the copy that overlaps forward/backward competes with real work.
//
//   bench_checkpoint [--hidden 768] [--layers 10] [--heads 12] [--ffn 2048] [--vocab 16384]
//                    [--seq 256] [--batch 1] [--saves 3] [--threads N] [--dir DIR]
//
// The defaults are a 102M-parameter Linear-Llama (1.2 GB of state with
// AdamW); --threads is the training threads (0 = every core; fewer leave
// cores to the saver, as on a GPU node whose host cores are idle); --dir is
// where files go (default /tmp/lintrain-bench-ckpt, removed at the end).
// "Raw" write speed is the better of buffered + fsync and O_DIRECT.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <filesystem>
#include <numeric>
#include <string>
#include <vector>

#include "layers/model.h"
#include "optim/optimizer.h"
#include "optim/optimizer_state.h"
#include "runtime/checkpoint/reader.h"
#include "runtime/checkpoint/saver.h"
#include "runtime/cpu/gemm.h"
#include "runtime/error.h"
#include "runtime/rng.h"

using namespace lintrain;
using Clock = std::chrono::steady_clock;

namespace {

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Drops a file's pages from the page cache (they are clean after fsync), so
// the next read comes from the disk.
void drop_cache(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return;
  ::fdatasync(fd);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
}

void drop_tree_cache(const std::string& dir) {
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
    if (e.is_regular_file()) drop_cache(e.path().string());
}

// Sequential write of `bytes` in 8 MiB pieces, then fsync: the disk's raw
// speed, through the page cache or (direct) around it.
double raw_write_mbs(const std::string& path, size_t bytes, bool direct) {
  constexpr size_t kPiece = size_t{8} << 20;
  void* mem = nullptr;
  LT_CHECK(::posix_memalign(&mem, 4096, kPiece) == 0, "out of memory");
  const std::unique_ptr<char, decltype(&std::free)> buf(static_cast<char*>(mem), &std::free);
  std::memset(buf.get(), 'x', kPiece);
  bytes = bytes / 4096 * 4096;  // O_DIRECT writes whole blocks
  const auto t0 = Clock::now();
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | (direct ? O_DIRECT : 0), 0644);
  LT_CHECK(fd >= 0, "cannot create ", path);
  for (size_t left = bytes; left > 0;) {
    const size_t n = std::min(left, kPiece);
    LT_CHECK(::write(fd, buf.get(), n) == static_cast<ssize_t>(n), "write to ", path, " failed");
    left -= n;
  }
  ::fsync(fd);
  ::close(fd);
  return bytes / since(t0) / 1e6;
}

double raw_read_mbs(const std::string& path) {
  drop_cache(path);
  std::vector<char> buf(size_t{8} << 20);
  const auto t0 = Clock::now();
  const int fd = ::open(path.c_str(), O_RDONLY);
  size_t total = 0;
  for (ssize_t n; (n = ::read(fd, buf.data(), buf.size())) > 0;) total += static_cast<size_t>(n);
  ::close(fd);
  return total / since(t0) / 1e6;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

double mean(const std::vector<double>& v) { return v.empty() ? 0 : std::accumulate(v.begin(), v.end(), 0.0) / v.size(); }

}  // namespace

int main(int argc, char** argv) {
  select_blas_kernels(argc, argv);
  ModelConfig mc;
  mc.hidden_size = 768;
  mc.num_hidden_layers = 10;
  mc.num_attention_heads = 12;
  mc.intermediate_size = 2048;
  mc.vocab_size = 16384;
  mc.layer_pattern = "LLLS";
  int T = 256, B = 1, saves = 3, threads = 0;
  std::string dir = "/tmp/lintrain-bench-ckpt";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    const int v = std::atoi(argv[i + 1]);
    if (a == "--hidden") mc.hidden_size = v;
    else if (a == "--layers") mc.num_hidden_layers = v;
    else if (a == "--heads") mc.num_attention_heads = v;
    else if (a == "--ffn") mc.intermediate_size = v;
    else if (a == "--vocab") mc.vocab_size = v;
    else if (a == "--seq") T = v;
    else if (a == "--batch") B = v;
    else if (a == "--saves") saves = v;
    else if (a == "--threads") threads = v;
    else if (a == "--dir") dir = argv[i + 1];
    else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return 2;
    }
  }
  set_num_threads(threads);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);

  LinearLlama model(mc, B, T);
  model.init_weights(1);
  OptimConfig oc;
  auto opt = make_optimizer(model.context(), oc, model.table(), 1);
  int64_t step = 0;
  auto build_state = [&] {
    RunState s;
    for (const TensorView& v : model.table().views())
      s.add("model", v.name, DType::F32, v.shape, model.params().at(v));
    add_optimizer_state(*opt, s);
    s.add_scalar("trainer", "train/step", &step);
    return s;
  };
  std::vector<int32_t> tokens(static_cast<size_t>(B) * T), targets(tokens.size());
  Rng rng(3);
  for (size_t i = 0; i < tokens.size(); ++i) {
    tokens[i] = static_cast<int32_t>(rng.below(static_cast<uint64_t>(mc.vocab_size)));
    targets[i] = static_cast<int32_t>(rng.below(static_cast<uint64_t>(mc.vocab_size)));
  }
  auto train_step = [&](CheckpointSaver* saver) {
    model.grads().zero();
    model.forward_backward(tokens.data(), targets.data(), 1.0f / (B * T));
    if (saver) saver->fence();
    opt->step(model.params(), model.grads(), 1e-4);
    ++step;
  };

  const RunState probe = build_state();
  const size_t bytes = probe.nbytes();
  std::printf("bench_checkpoint: %lld parameters, state %.1f MB (weights + AdamW), B=%d T=%d, %d threads, dir %s\n",
              static_cast<long long>(model.table().param_count()), bytes / 1e6, B, T, num_threads(), dir.c_str());

  // 1. The disk's own speed is measured beside each save and restore below
  // (alternating, with a file the size of the state): a virtual disk's speed
  // drifts by 2x within minutes, so only measurements taken together compare.
  const std::string raw = dir + "/raw.bin";

  // 2. Step time without saves.
  train_step(nullptr);  // warm-up
  std::vector<double> plain;
  for (int i = 0; i < 3; ++i) {
    const auto t0 = Clock::now();
    train_step(nullptr);
    plain.push_back(since(t0));
  }
  std::sort(plain.begin(), plain.end());
  const double t_step = plain[1];
  std::printf("step without saves: %.3f s (median of 3)\n", t_step);

  // 3. Asynchronous saves: stall = save() + fence(); interference = how much
  // longer the steps run while the background write goes on.
  SaverOptions so;
  so.job = new_job_id();
  so.keep = 2;
  so.timeout_s = 3600;
  std::vector<double> async_stall, interference, async_write;
  {
    CheckpointSaver saver(so, directory_target(dir + "/async", 0));
    saver.reserve(build_state());  // as the trainer does at start-up, some steps before the first save
    saver.finish();
    for (int i = 0; i < saves; ++i) {
      const auto ts = Clock::now();
      saver.save(step, build_state(), false);
      const double save_call = since(ts);
      double steps_time = 0;
      int n = 0;
      do {
        const auto t0 = Clock::now();
        train_step(&saver);
        steps_time += since(t0);
        ++n;
      } while (saver.busy());
      for (const SaveReport& r : saver.take_reports()) {
        LT_CHECK(r.ok, "async save failed: ", r.error);
        async_stall.push_back(r.stall_s);
        async_write.push_back(r.write_s);
        // stall = save() + fence(); the fence time is inside steps_time: count it once.
        const double fence = r.stall_s - save_call;
        interference.push_back(std::max(0.0, steps_time - n * t_step - fence));
      }
    }
  }
  // 4. Synchronous saves of the same state, each after a raw write.
  std::vector<double> sync_stall, w_buffered, w_direct, save_mbs;
  so.async = false;
  {
    CheckpointSaver saver(so, directory_target(dir + "/sync", 0));
    saver.reserve(build_state());
    saver.finish();
    for (int i = 0; i < saves; ++i) {
      w_buffered.push_back(raw_write_mbs(raw, bytes, false));
      w_direct.push_back(raw_write_mbs(raw, bytes, true));
      saver.save(step, build_state(), true);
      for (const SaveReport& r : saver.take_reports()) {
        LT_CHECK(r.ok, "sync save failed: ", r.error);
        sync_stall.push_back(r.stall_s);
      }
      train_step(nullptr);
    }
  }
  const double a = mean(async_stall), in = mean(interference), s = mean(sync_stall);
  std::printf("async save: training stall %.3f s (save() + fence()), steps slowed by %.3f s while writing "
              "(background write %.2f s)\n", a, in, mean(async_write));
  std::printf("sync save: training stall %.3f s\n", s);
  std::printf("stall async / sync: %.1f%% (stall alone), %.1f%% (with the slowdown)\n", 100 * a / s,
              100 * (a + in) / s);

  // 5. Save and restore speed against the raw disk: medians of the rounds.
  for (double t : sync_stall) save_mbs.push_back(bytes / t / 1e6);
  std::vector<double> r_raw, restore_mbs;
  const std::string newest = dir + "/sync";
  RunState target = build_state();
  for (int i = 0; i < saves; ++i) {
    r_raw.push_back(raw_read_mbs(raw));
    drop_tree_cache(newest);
    const auto t0 = Clock::now();
    const OpenedCheckpoint c = open_checkpoint_path(newest, nullptr);
    restore_run_state(c, target);
    restore_mbs.push_back(bytes / since(t0) / 1e6);
  }
  const double w_raw = std::max(median(w_buffered), median(w_direct));
  std::printf("raw disk (medians): sequential write + fsync %.0f MB/s buffered, %.0f MB/s O_DIRECT; read (cache "
              "dropped) %.0f MB/s\n", median(w_buffered), median(w_direct), median(r_raw));
  std::printf("save: %.0f MB/s = %.0f%% of raw write; restore (read + verify + copy): %.0f MB/s = %.0f%% of raw read "
              "(medians of %d)\n", median(save_mbs), 100 * median(save_mbs) / w_raw, median(restore_mbs),
              100 * median(restore_mbs) / median(r_raw), saves);
  std::filesystem::remove_all(dir);
  return 0;
}
