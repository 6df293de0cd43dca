#include "launch/trainer.h"

#include <omp.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>

#include "launch/metrics.h"
#include "launch/weights.h"
#include "layers/model.h"
#include "optim/optimizer.h"
#include "optim/param_groups.h"
#include "optim/schedule.h"
#include "parallel/communicator.h"
#include "parallel/grad_reducer.h"
#include "parallel/process_grid.h"
#include "runtime/cpu/gemm.h"
#include "runtime/data/data_loader.h"

namespace lintrain {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Refuse what this version cannot do rather than silently ignore it.
void check_supported(const RunConfig& cfg) {
  if (cfg.precision.fp8.enabled)
    throw ConfigError("precision.fp8.enabled: FP8 GEMMs are not available in this version of "
                      "lintrain; set precision.fp8.enabled=false");
  if (cfg.checkpoint.every > 0)
    throw ConfigError("checkpoint.every: checkpoints are not available in this version of "
                      "lintrain; set checkpoint.every=0 (weights are still exported as "
                      "model.safetensors, see train.export_every)");
  if (cfg.resume != "none" && cfg.resume != "auto")
    throw ConfigError(str_cat("resume: '", cfg.resume, "': resuming from a checkpoint is not "
                              "available in this version of lintrain; use --init-from "
                              "model.safetensors to start from exported weights"));
}

// Threads per rank: run.threads, else OMP_NUM_THREADS, else the node's cores
// shared among the ranks on it.
int threads_per_rank(const RunConfig& cfg, int local_ranks) {
  if (cfg.run.threads > 0) return cfg.run.threads;
  const char* env = std::getenv("OMP_NUM_THREADS");
  if (env && std::atoi(env) > 0) return std::atoi(env);
  return std::max(1, omp_get_num_procs() / std::max(1, local_ranks));
}

// This rank's piece of a batch: SP rank j of W keeps tokens [j*C, (j+1)*C) of
// every sequence (C = T / W); the data-parallel split is the loader's.
void take_chunk(const Batch& full, int sp_rank, int chunk, Batch& out) {
  out.resize(full.B, chunk);
  for (int b = 0; b < full.B; ++b)
    for (int t = 0; t < chunk; ++t) {
      const size_t src = static_cast<size_t>(b) * full.T + static_cast<size_t>(sp_rank) * chunk + t;
      out.inputs[static_cast<size_t>(b) * chunk + t] = full.inputs[src];
      out.targets[static_cast<size_t>(b) * chunk + t] = full.targets[src];
    }
}

struct Totals {
  double loss_sum = 0, count = 0, correct = 0;
  void add(const CrossEntropyStats& s) {
    loss_sum += s.loss_sum;
    count += static_cast<double>(s.count);
    correct += static_cast<double>(s.correct);
  }
  void all_reduce(Communicator& world) {
    double v[3] = {loss_sum, count, correct};
    world.all_reduce_f64(v, 3);
    loss_sum = v[0], count = v[1], correct = v[2];
  }
  double loss() const { return loss_sum / std::max(1.0, count); }
  double accuracy() const { return correct / std::max(1.0, count); }
};

Totals evaluate(LinearLlama& model, DataLoader& valid, int batches, const ProcessGrid& grid) {
  Totals total;
  Batch full, mine;
  valid.reset();  // every evaluation sees the same validation windows
  for (int i = 0; i < batches; ++i) {
    valid.next(full);
    take_chunk(full, grid.sp_rank(), model.seq_len(), mine);
    total.add(model.forward_loss(mine.inputs.data(), mine.targets.data()));
  }
  total.all_reduce(grid.world());
  return total;
}

}  // namespace

TrainResult train(const RunConfig& cfg, const TrainOptions& opts, Communicator& world) {
  check_supported(cfg);
  const ProcessGrid grid(cfg.parallel, world);  // validates sequence x data == world size
  const bool lead = world.rank() == 0;
  const bool print = opts.print && lead;
  set_num_threads(threads_per_rank(cfg, opts.local_ranks));
  if (lead) {
    std::filesystem::create_directories(cfg.run.out_dir);
    std::ofstream(cfg.run.out_dir + "/config.yaml") << config_to_yaml(cfg);
  }

  const int B = cfg.train.micro_batch, T = cfg.data.seq_len, C = T / grid.sp_size();
  LinearLlama model(cfg.model, B, C, cfg.precision.compute == "bf16",
                    grid.sp_size() > 1 ? &grid.sp() : nullptr);
  // Every rank initialises identically from the seed (or the same file), so
  // the replicas start equal without a broadcast.
  if (opts.init_from.empty()) model.init_weights(cfg.run.seed);
  else import_weights(model, opts.init_from);
  auto optimizer = make_optimizer(cfg.optim, model.table(), cfg.run.seed);
  auto train_data = make_data_loader(cfg.data, Split::Train, cfg.model.vocab_size, B, T,
                                     cfg.run.seed, grid.dp_rank(), grid.dp_size());
  auto valid_data = make_data_loader(cfg.data, Split::Valid, cfg.model.vocab_size, B, T,
                                     cfg.run.seed, grid.dp_rank(), grid.dp_size());
  std::unique_ptr<GradReducer> reducer;
  if (world.size() > 1) reducer = std::make_unique<GradReducer>(model.table(), model.grads(), world);
  const bool report_accuracy = cfg.data.kind == "mqar";

  if (print) {
    std::printf("lintrain: %s | %lld parameters | layers %d pattern %s | %s data | B=%d T=%d accum=%d\n",
                cfg.run.name.c_str(), static_cast<long long>(model.table().param_count()),
                cfg.model.num_hidden_layers, cfg.model.layer_pattern.c_str(), cfg.data.kind.c_str(),
                B, T, cfg.train.grad_accum);
    std::printf("lintrain: %s | %d threads/rank, BLAS %s | compute %s | activations %.1f MiB, "
                "optimizer state %.1f MiB per rank\n",
                grid.describe().c_str(), num_threads(), blas_description(),
                cfg.precision.compute.c_str(), model.activation_bytes() / 1048576.0,
                optimizer->state_bytes() / 1048576.0);
    std::fputs(format_optimizer_report(cfg.optim, plan_optimizer_memory(cfg.optim, model.table())).c_str(), stdout);
  }

  std::unique_ptr<MetricsLog> log;
  if (lead) log = std::make_unique<MetricsLog>(cfg.run.out_dir, cfg.train.steps, /*fresh=*/true);
  TrainResult result;
  const int accum = cfg.train.grad_accum;
  std::vector<Batch> micro(static_cast<size_t>(accum));
  Batch full;
  const auto run_start = Clock::now();
  const int64_t step_tokens = static_cast<int64_t>(B) * T * accum * grid.dp_size();
  int64_t tokens_seen = 0;

  for (int step = 0; step < cfg.train.steps; ++step) {
    const auto t0 = Clock::now();
    const uint64_t flops0 = gemm_flops();
    // Load the whole step first: the loss is a mean over every counted token
    // of the step on every rank, so each micro-batch's gradient is scaled by
    // 1 / that global count and the all-reduce is a plain sum.
    double counted = 0;
    for (auto& mb : micro) {
      train_data->next(full);
      take_chunk(full, grid.sp_rank(), C, mb);
      for (int32_t t : mb.targets) counted += t >= 0;
    }
    world.all_reduce_f64(&counted, 1);
    LT_CHECK(counted > 0, "data: a training step has no target tokens; check the data settings");
    const float grad_scale = static_cast<float>(1.0 / counted);
    model.grads().zero();
    Totals stats;
    for (int m = 0; m < accum; ++m) {
      // Gradients are final only in the last micro-batch: its backward starts
      // each bucket's all-reduce as soon as the bucket's layers are done.
      if (reducer && m == accum - 1)
        model.set_grads_ready_hook([&](const std::vector<int>& views) {
          for (int v : views) reducer->mark_ready(v);
        });
      stats.add(model.forward_backward(micro[static_cast<size_t>(m)].inputs.data(),
                                       micro[static_cast<size_t>(m)].targets.data(), grad_scale));
    }
    model.set_grads_ready_hook(nullptr);
    if (reducer) reducer->finish();
    stats.all_reduce(world);
    const double grad_norm = grad_global_norm(model.grads());
    clip_grad_norm(model.grads(), grad_norm, cfg.train.grad_clip);
    const double lr = learning_rate(cfg.schedule, optim_peak_lr(cfg.optim), step, cfg.train.steps);
    optimizer->step(model.params(), model.grads(), lr);

    const double dt = seconds_since(t0);
    double flops = static_cast<double>(gemm_flops() - flops0);
    world.all_reduce_f64(&flops, 1);
    const double loss = stats.loss(), acc = stats.accuracy();
    tokens_seen += step_tokens;
    const double tok_s = step_tokens / dt, gflops = flops / dt * 1e-9;
    result.losses.push_back(loss);
    LT_CHECK(std::isfinite(loss), "training diverged at step ", step + 1, " (loss ", loss,
             "); lower optim.lr or enable train.grad_clip");
    const bool last = step + 1 == cfg.train.steps;
    if (lead) {
      std::vector<std::pair<std::string, double>> row = {
          {"loss", loss}, {"lr", lr}, {"grad_norm", grad_norm}, {"tokens_per_s", tok_s},
          {"gflops", gflops}, {"step_time_s", dt}};
      if (report_accuracy) row.emplace_back("accuracy", acc);
      log->write(step + 1, row);
      if (print && (last || (step + 1) % cfg.train.log_every == 0))
        log->print_step(step, loss, lr, grad_norm, tok_s, gflops, report_accuracy ? acc : -1.0);
    }

    if (last || (cfg.train.eval_every > 0 && (step + 1) % cfg.train.eval_every == 0)) {
      const Totals ev = evaluate(model, *valid_data, cfg.train.eval_batches, grid);
      if (lead) {
        std::vector<std::pair<std::string, double>> erow = {{"loss", ev.loss()}};
        if (report_accuracy) erow.emplace_back("accuracy", ev.accuracy());
        log->write(step + 1, erow, "eval");
        if (print) log->print_eval(step, ev.loss(), report_accuracy ? ev.accuracy() : -1.0);
      }
      result.eval_loss = ev.loss();
      result.eval_accuracy = ev.accuracy();
    }
    if (lead && !last && cfg.train.export_every > 0 && (step + 1) % cfg.train.export_every == 0)
      export_weights(model, cfg.run.out_dir);
  }
  if (log) log->finish();
  result.tokens_per_s = tokens_seen / seconds_since(run_start);
  if (lead) {
    export_weights(model, cfg.run.out_dir);
    if (print)
      std::printf("lintrain: done in %s; weights in %s/model.safetensors\n",
                  format_duration(seconds_since(run_start)).c_str(), cfg.run.out_dir.c_str());
  }
  return result;
}

}  // namespace lintrain
