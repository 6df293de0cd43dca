#include "launch/trainer.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "launch/metrics.h"
#include "launch/weights.h"
#include "layers/model.h"
#include "optim/optimizer.h"
#include "optim/schedule.h"
#include "runtime/cpu/gemm.h"
#include "runtime/data/data_loader.h"

namespace lintrain {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

struct EvalResult {
  double loss, accuracy;
};

EvalResult evaluate(LinearLlama& model, DataLoader& valid, int batches) {
  CrossEntropyStats total;
  Batch batch;
  valid.reset();  // every evaluation sees the same validation windows
  for (int i = 0; i < batches; ++i) {
    valid.next(batch);
    const CrossEntropyStats s = model.forward_loss(batch.inputs.data(), batch.targets.data());
    total.loss_sum += s.loss_sum;
    total.count += s.count;
    total.correct += s.correct;
  }
  const double n = static_cast<double>(total.count > 0 ? total.count : 1);
  return {total.loss_sum / n, static_cast<double>(total.correct) / n};
}

}  // namespace

TrainResult train(const RunConfig& cfg, const TrainOptions& opts) {
  LT_CHECK(cfg.parallel.sequence * cfg.parallel.data == 1,
           "parallel: this build trains on one process; set parallel.sequence=1 and parallel.data=1");
  // Refuse what this build cannot do rather than silently ignore it.
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
  set_num_threads(cfg.run.threads);
  std::filesystem::create_directories(cfg.run.out_dir);
  {
    std::ofstream f(cfg.run.out_dir + "/config.yaml");
    f << config_to_yaml(cfg);
  }

  const int B = cfg.train.micro_batch, T = cfg.data.seq_len;
  LinearLlama model(cfg.model, B, T, cfg.precision.compute == "bf16");
  if (opts.init_from.empty()) model.init_weights(cfg.run.seed);
  else import_weights(model, opts.init_from);
  auto optimizer = make_optimizer(cfg.optim, model.table());
  auto train_data = make_data_loader(cfg.data, Split::Train, cfg.model.vocab_size, B, T, cfg.run.seed, 0, 1);
  auto valid_data = make_data_loader(cfg.data, Split::Valid, cfg.model.vocab_size, B, T, cfg.run.seed, 0, 1);
  const bool report_accuracy = cfg.data.kind == "mqar";

  if (opts.print) {
    std::printf("lintrain: %s | %lld parameters | layers %d pattern %s | %s data | B=%d T=%d accum=%d\n",
                cfg.run.name.c_str(), static_cast<long long>(model.table().param_count()),
                cfg.model.num_hidden_layers, cfg.model.layer_pattern.c_str(), cfg.data.kind.c_str(),
                B, T, cfg.train.grad_accum);
    std::printf("lintrain: %d threads, BLAS %s | compute %s | activations %.1f MiB, optimizer state %.1f MiB\n",
                num_threads(), blas_description(), cfg.precision.compute.c_str(),
                model.activation_bytes() / 1048576.0,
                optimizer->state_bytes() / 1048576.0);
  }

  MetricsLog log(cfg.run.out_dir, cfg.train.steps, /*fresh=*/true);
  TrainResult result;
  std::vector<Batch> micro(static_cast<size_t>(cfg.train.grad_accum));
  const auto run_start = Clock::now();
  int64_t tokens_seen = 0;

  for (int step = 0; step < cfg.train.steps; ++step) {
    const auto t0 = Clock::now();
    const uint64_t flops0 = gemm_flops();
    // Load the whole step first: the loss is a mean over every counted token
    // of the step, so each micro-batch's gradient is scaled by 1 / that count.
    int64_t counted = 0;
    for (auto& mb : micro) {
      train_data->next(mb);
      for (int32_t t : mb.targets) counted += t >= 0;
    }
    LT_CHECK(counted > 0, "data: a training step has no target tokens; check the data settings");
    const float grad_scale = 1.0f / static_cast<float>(counted);
    model.grads().zero();
    CrossEntropyStats stats;
    for (auto& mb : micro) {
      const CrossEntropyStats s = model.forward_backward(mb.inputs.data(), mb.targets.data(), grad_scale);
      stats.loss_sum += s.loss_sum;
      stats.count += s.count;
      stats.correct += s.correct;
    }
    const double grad_norm = grad_global_norm(model.grads());
    clip_grad_norm(model.grads(), grad_norm, cfg.train.grad_clip);
    const double lr = learning_rate(cfg.schedule, cfg.optim.lr, step, cfg.train.steps);
    optimizer->step(model.params(), model.grads(), lr);

    const double dt = seconds_since(t0);
    const double loss = stats.loss_sum / static_cast<double>(stats.count);
    const double acc = static_cast<double>(stats.correct) / static_cast<double>(stats.count);
    const int64_t step_tokens = static_cast<int64_t>(B) * T * cfg.train.grad_accum;
    tokens_seen += step_tokens;
    const double tok_s = step_tokens / dt;
    const double gflops = static_cast<double>(gemm_flops() - flops0) / dt * 1e-9;
    result.losses.push_back(loss);
    LT_CHECK(std::isfinite(loss), "training diverged at step ", step + 1, " (loss ", loss,
             "); lower optim.lr or enable train.grad_clip");
    std::vector<std::pair<std::string, double>> row = {
        {"loss", loss}, {"lr", lr}, {"grad_norm", grad_norm}, {"tokens_per_s", tok_s},
        {"gflops", gflops}, {"step_time_s", dt}};
    if (report_accuracy) row.emplace_back("accuracy", acc);
    log.write(step + 1, row);
    const bool last = step + 1 == cfg.train.steps;
    if (opts.print && (last || (step + 1) % cfg.train.log_every == 0))
      log.print_step(step, loss, lr, grad_norm, tok_s, gflops, report_accuracy ? acc : -1.0);

    if (last || (cfg.train.eval_every > 0 && (step + 1) % cfg.train.eval_every == 0)) {
      const EvalResult ev = evaluate(model, *valid_data, cfg.train.eval_batches);
      std::vector<std::pair<std::string, double>> erow = {{"loss", ev.loss}};
      if (report_accuracy) erow.emplace_back("accuracy", ev.accuracy);
      log.write(step + 1, erow, "eval");
      if (opts.print) log.print_eval(step, ev.loss, report_accuracy ? ev.accuracy : -1.0);
      result.eval_loss = ev.loss;
      result.eval_accuracy = ev.accuracy;
    }
    if (!last && cfg.train.export_every > 0 && (step + 1) % cfg.train.export_every == 0)
      export_weights(model, cfg.run.out_dir);
  }
  log.finish();
  result.tokens_per_s = tokens_seen / seconds_since(run_start);
  export_weights(model, cfg.run.out_dir);
  if (opts.print)
    std::printf("lintrain: done in %s; weights in %s/model.safetensors\n",
                format_duration(seconds_since(run_start)).c_str(), cfg.run.out_dir.c_str());
  return result;
}

}  // namespace lintrain
