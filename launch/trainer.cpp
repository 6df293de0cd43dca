#include "launch/trainer.h"

#include <omp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>

#include "launch/checkpointing.h"
#include "launch/device_groups.h"
#include "launch/divergence.h"
#include "launch/evaluation.h"
#include "launch/fp8_training.h"
#include "launch/metrics.h"
#include "launch/mfu.h"
#include "runtime/io/tensorboard/event_writer.h"
#include "launch/preflight.h"
#include "launch/stop_signals.h"
#include "launch/train_state.h"
#include "launch/weights.h"
#include "runtime/io/atomic_file.h"
#include "runtime/io/file_lock.h"
#include "runtime/io/input_file.h"
#include "layers/model.h"
#include "optim/optimizer.h"
#include "optim/param_groups.h"
#include "optim/schedule.h"
#include "parallel/communicator.h"
#include "parallel/grad_reducer.h"
#include "parallel/process_grid.h"
#include "parallel/watchdog.h"
#include "runtime/cpu/gemm.h"
#include "runtime/data/data_loader.h"
#include "runtime/device.h"
#include "runtime/failpoint.h"

namespace lintrain {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// The run's export of `step`'s weights to run.out_dir.
void export_run_weights(const LinearLlama& model, const RunConfig& cfg, int64_t step) {
  if (failpoint("train.export-fails", step))
    throw IoError(str_cat("cannot write '", cfg.run.out_dir, "/model.safetensors': failpoint train.export-fails"));
  export_weights(model, export_info(cfg), cfg.run.out_dir);
}

}  // namespace

TrainResult train(const RunConfig& cfg, const TrainOptions& opts, Communicator& world) {
  install_stop_signals();  // main installs them earlier; a library caller gets them here
  if (failpoint("train.sigterm-at-start")) std::raise(SIGTERM);  // a stop signal during start-up
  watchdog::set_timeout(cfg.parallel.timeout_s);  // MPI jobs: a stalled collective aborts the job (parallel/watchdog.h)
  watchdog::set_step(0);
  // Before anything whose shape depends on the config (the grid's splits
  // first): ranks started with different settings stop here, named.
  check_ranks_agree(cfg, opts.init_from, world);
  const ProcessGrid grid(cfg.parallel, world);  // validates sequence x data == world size
  const bool lead = world.rank() == 0;
  const bool print = opts.print && lead;
  set_num_threads(threads_per_rank(cfg, opts.local_ranks));
  check_memory_fits(cfg, grid.sp_size(), opts.local_ranks);
  // Rank 0 owns run.out_dir for the run's life: a second run on it is
  // refused before it writes anything there.
  std::unique_ptr<FileLock> out_lock;
  if (lead) {
    out_lock = claim_out_dir(cfg.run.out_dir);
    for (const std::string& name : remove_stale_temp_files(cfg.run.out_dir))
      if (print) std::printf("lintrain: removed %s/%s, a temporary file left by a killed writer\n",
                             cfg.run.out_dir.c_str(), name.c_str());
  }

  // The rank's GPU (run.device: cuda) and the groups its device buffers use.
  const DeviceGroups devices(cfg, grid, world, opts.local_rank, opts.local_ranks);
  const int B = cfg.train.micro_batch, T = cfg.data.seq_len, C = T / grid.sp_size();
  LinearLlama model(cfg.model, B, C, cfg.precision.compute == "bf16",
                    grid.sp_size() > 1 ? &devices.sp() : nullptr, devices.device());
  const bool fp8 = cfg.precision.fp8.enabled;
  if (fp8) {
    model.enable_fp8(fp8_model_options(cfg.precision.fp8, &world));
    if (!model.fp8_enabled())
      throw ConfigError("precision.fp8.include / exclude select no block linear tensor (model.layers.*.{q,k,v,g,o,"
                        "gate,up,down}_proj.weight): nothing would run in FP8; widen precision.fp8.include or set "
                        "precision.fp8.enabled=false");
  }
  auto optimizer = make_optimizer(model.context(), cfg.optim, model.table(), cfg.run.seed);
  auto train_data = make_data_loader(cfg.data, Split::Train, cfg.model.vocab_size, B, T,
                                     cfg.run.seed, grid.dp_rank(), grid.dp_size());
  auto valid_data = make_data_loader(cfg.data, Split::Valid, cfg.model.vocab_size, B, T,
                                     cfg.run.seed, grid.dp_rank(), grid.dp_size());
  check_data_agrees(*train_data, cfg.data.blend.empty() ? str_cat("data.path '", cfg.data.path, "'") : "data.blend",
                    world);
  check_eval_batches(cfg, *valid_data);
  std::unique_ptr<GradReducer> reducer;
  if (world.size() > 1) reducer = std::make_unique<GradReducer>(model.table(), model.grads(), devices.all());
  const bool report_accuracy = cfg.data.kind == "mqar";

  TrainState state(cfg, grid, model, *optimizer, *train_data);
  // Rank 0 may talk to the checkpoint service (up to checkpoint.timeout_s) while the others wait for it.
  watchdog::Allowance restoring(cfg.checkpoint.timeout_s);
  RunCheckpoints checkpoints(cfg, grid);
  std::vector<std::string> resume_notes;
  const int64_t resumed = checkpoints.resume(state, resume_notes);
  restoring.end();
  // The run file as it runs, once resuming has accepted it (a refused change
  // leaves the previous run's copy as it was).
  if (lead) write_file_atomic(cfg.run.out_dir + "/config.yaml", config_to_yaml(cfg));
  // A fresh start: every rank initialises identically from the seed (or the
  // same file), so the replicas start equal without a broadcast; a digest
  // check below makes sure. A resumed run has its weights from the checkpoint.
  std::vector<std::string> init_notes;
  if (resumed < 0 && opts.init_from.empty()) model.init_weights(cfg.run.seed);
  else if (resumed < 0) init_notes = import_weights(model, opts.init_from);
  check_replicas_equal(model.params(), world,
                       resumed >= 0          ? str_cat("after resuming from the step-", resumed, " checkpoint")
                       : opts.init_from.empty() ? std::string("after initialisation from run.seed")
                                                : str_cat("after loading --init-from ", opts.init_from));
  TrainCounters& counters = state.counters;
  TrainResult result;
  result.resumed_from = resumed;
  // MFU's numerator and denominator (launch/mfu.h); rank 0 reports it.
  const double model_flops_token = model_flops_per_token(cfg);
  const PeakFlops peak = lead ? peak_flops(cfg) : PeakFlops{};

  if (print) {
    std::printf("lintrain: %s | %lld parameters | layers %d pattern %s | %s data | B=%d T=%d accum=%d\n",
                cfg.run.name.c_str(), static_cast<long long>(model.table().param_count()),
                cfg.model.num_hidden_layers, cfg.model.layer_pattern.c_str(), cfg.data.kind.c_str(),
                B, T, cfg.train.grad_accum);
    std::printf("lintrain: %s | %s | %d threads/rank, BLAS %s | compute %s | activations %.1f MiB, "
                "optimizer state %.1f MiB per rank\n",
                grid.describe().c_str(), devices.describe().c_str(), num_threads(), blas_description(),
                cfg.precision.compute.c_str(), model.activation_bytes() / 1048576.0,
                optimizer->state_bytes() / 1048576.0);
    std::fputs(format_optimizer_report(cfg.optim, plan_optimizer_memory(cfg.optim, model.table())).c_str(), stdout);
    std::printf("lintrain: checkpoints %s in %s (job %s)\n",
                cfg.checkpoint.every > 0 ? str_cat("every ", cfg.checkpoint.every, " steps, keep ",
                                                   cfg.checkpoint.keep, cfg.checkpoint.async ? ", async" : ", sync")
                                               .c_str()
                                         : "only on SIGTERM/SIGUSR1/Ctrl-C",
                checkpoints.describe().c_str(), checkpoints.job().c_str());
    if (resumed >= 0 && !opts.init_from.empty())
      resume_notes.push_back(str_cat("--init-from ", opts.init_from, " is not used: the run continues from its checkpoint"));
    if (fp8)
      std::printf("lintrain: fp8 %s recipe, format %s: %zu block GEMMs in FP8 (emulated: quantise, read back, "
                  "FP32 matmul)\n",
                  cfg.precision.fp8.recipe.c_str(), cfg.precision.fp8.format.c_str(), model.fp8_gemms().size());
    if (peak.per_rank > 0)
      std::printf("lintrain: MFU against a peak of %.1f GFLOP/s per rank (%s); the model needs %.4g MFLOP per "
                  "token, forward + backward\n",
                  peak.per_rank * 1e-9, peak.source.c_str(), model_flops_token * 1e-6);
    else
      std::printf("lintrain: no MFU: %s\n", peak.source.c_str());
    for (const std::string& n : resume_notes) std::printf("lintrain: %s\n", n.c_str());
    for (const std::string& n : init_notes) std::printf("lintrain: %s\n", n.c_str());
  }
  std::unique_ptr<MetricsLog> log;
  if (lead) log = std::make_unique<MetricsLog>(cfg.run.out_dir, cfg.train.steps, resumed);
  // The same scalars as metrics.jsonl, for TensorBoard. Its first event is a
  // SessionLog START at this run's first step, so the reader drops what an
  // earlier run logged from there on (a killed run's steps past its last
  // checkpoint, or an old run in a reused out_dir): no step shows twice.
  std::unique_ptr<EventFileWriter> tensorboard;
  if (lead && cfg.run.tensorboard) {
    EventWriterOptions tb_options;
    tb_options.flush_every_s = cfg.run.tensorboard_flush_s;
    tensorboard = std::make_unique<EventFileWriter>(new_event_file_path(cfg.run.out_dir), tb_options);
    tensorboard->add_session_start(resumed >= 0 ? resumed + 1 : 0);
  }
  // The evaluation after `step` steps, logged; false when a stop signal cut it short.
  const auto evaluate_step = [&](int64_t step, Totals& ev) {
    if (!evaluate(model, *valid_data, cfg.train.eval_batches, grid, ev)) return false;
    if (lead) {
      std::vector<std::pair<std::string, double>> erow = {{"loss", ev.loss()}};
      if (report_accuracy) erow.emplace_back("accuracy", ev.accuracy());
      log->write(static_cast<int>(step), erow, "eval");
      if (tensorboard) tensorboard->add_scalars(step, "eval/", erow);
      if (print) log->print_eval(static_cast<int>(step) - 1, ev.loss(), report_accuracy ? ev.accuracy() : -1.0);
    }
    return true;
  };
  // Whether metrics.jsonl holds the evaluation of the step resumed from (one
  // a stop signal cut short has none), the same on every rank.
  const auto resumed_eval_done = [&]() {
    double done = log && log->resumed_eval_done();
    world.all_reduce_f64(&done, 1);
    return done > 0;
  };
  if (resumed >= 0 && counters.step >= cfg.train.steps) {
    // Training is over; what may be missing is the end of it: the final
    // evaluation (cut short by a stop signal) and the export (a run killed
    // after its final checkpoint). The export is rewritten from the
    // checkpoint's weights either way: the same bytes the run would write.
    const bool eval_done = resumed_eval_done();
    if (print)
      std::printf("lintrain: the run is complete at step %lld (train.steps = %d); nothing to train%s. Raise "
                  "train.steps to continue it, or set resume: none to start over\n",
                  static_cast<long long>(counters.step), cfg.train.steps,
                  eval_done ? "" : " (its final evaluation runs now)");
    const int64_t step = counters.step;
    if (!eval_done) {
      Totals ev;
      if (!evaluate_step(step, ev)) {
        if (print) std::printf("lintrain: final evaluation cut short by %s; run again to finish it (exit code %d)\n",
                               signal_name(stop_signal_received()), kExitPreempted);
        result.stopped_by_signal = stop_cause();
        return result;
      }
      result.eval_loss = ev.loss();
      result.eval_accuracy = ev.accuracy();
      if (lead) log->finish();
    }
    if (lead) {
      try {
        export_run_weights(model, cfg, step);
      } catch (const Error& e) {
        throw Error(str_cat("the export of the trained weights (step ", step, ") failed: ", e.what(),
                            ". The checkpoint of step ", step, " still holds them: fix the problem and run the same "
                            "command again"));
      }
      if (print)
        std::printf("lintrain: weights of step %lld in %s/model.safetensors\n", static_cast<long long>(step),
                    cfg.run.out_dir.c_str());
    }
    world.barrier();
    result.complete = true;
    return result;
  }
  // A stop asked for during start-up: nothing has changed since the
  // checkpoint this run resumed from (or since nothing), so nothing to save.
  {
    double stop = stop_signal_received() != 0;
    world.all_reduce_f64(&stop, 1);
    if (stop > 0) {
      if (print)
        std::printf("lintrain: stopped by %s before the first step; nothing new to save. Run the same command again "
                    "to %s (exit code %d)\n",
                    signal_name(stop_signal_received()), resumed >= 0 ? "continue" : "start", kExitPreempted);
      result.stopped_by_signal = stop_cause();
      return result;
    }
  }

  // A periodic evaluation that a stop signal cut short (its checkpoint was
  // saved right after): run it now, on the same weights, so the record of
  // every evaluation step is complete.
  if (resumed > 0 && cfg.train.eval_every > 0 && resumed % cfg.train.eval_every == 0 && !resumed_eval_done()) {
    if (print) std::printf("lintrain: the evaluation of step %lld was cut short by the stop; it runs now\n",
                           static_cast<long long>(resumed));
    Totals ev;
    if (!evaluate_step(resumed, ev)) {
      if (print) std::printf("lintrain: stopped by %s during that evaluation; nothing new to save (exit code %d)\n",
                             signal_name(stop_signal_received()), kExitPreempted);
      result.stopped_by_signal = stop_cause();
      return result;
    }
  }

  checkpoints.reserve(state.snapshot());
  const int accum = cfg.train.grad_accum;
  std::vector<Batch> micro(static_cast<size_t>(accum));
  Batch full;
  const auto run_start = Clock::now();
  const int64_t step_tokens = static_cast<int64_t>(B) * T * accum * grid.dp_size();
  const int64_t first_step = counters.step;
  const int64_t bad_before = counters.bad_steps_total;
  DivergenceWatch watch(cfg, !opts.init_from.empty(), resumed >= 0);
  bool final_eval_cut = false;  // a stop signal cut the final evaluation short
  double last_loss = 0, last_norm = 0;

  for (int step = static_cast<int>(counters.step); step < cfg.train.steps; ++step) {
    const auto t0 = Clock::now();
    watchdog::set_step(step + 1);
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
    if (failpoint("train.nan-grad", step + 1)) {
      const float nan = std::nanf("");
      copy_from_host(model.context().device, model.grads().data(), &nan, sizeof nan);
    }
    stats.all_reduce(world);
    const double grad_norm = grad_global_norm(model.context(), model.grads());
    const double loss = stats.loss(), acc = stats.accuracy();
    const double lr = learning_rate(cfg.schedule, optim_peak_lr(cfg.optim), step, cfg.train.steps);
    // Every rank sees the same loss and norm (both reduced), so all skip together.
    const bool finite = std::isfinite(loss) && std::isfinite(grad_norm);
    last_loss = loss, last_norm = grad_norm;
    const std::string blowup = watch.observe(step + 1, loss, grad_norm, lr);
    // The last checkpoint's copy of the state ran beside this step's forward
    // and backward; from here on the state changes.
    checkpoints.fence();
    if (finite) {
      clip_grad_norm(model.context(), model.grads(), grad_norm, cfg.train.grad_clip);
      optimizer->step(model.params(), model.grads(), lr);
      counters.bad_steps_in_row = 0;
    } else {
      ++counters.bad_steps_in_row;
      ++counters.bad_steps_total;
    }
    model.fp8_end_step();  // the delayed recipe's amaxes, reduced over the ranks, roll into its scales
    counters.step = step + 1;
    counters.tokens_seen += step_tokens;
    std::vector<std::pair<std::string, double>> fp8_row;
    std::string fp8_warning;
    if (fp8) report_fp8_counts(model, world, cfg.precision.fp8.warn_saturated, step + 1, &fp8_row, &fp8_warning);

    const double dt = seconds_since(t0);
    // One reduction carries the GEMM work and whether any rank was asked to stop.
    double end_of_step[2] = {static_cast<double>(gemm_flops() - flops0), static_cast<double>(stop_signal_received())};
    world.all_reduce_f64(end_of_step, 2);
    const double flops = end_of_step[0];
    bool stop = end_of_step[1] > 0;
    const double tok_s = step_tokens / dt, gflops = flops / dt * 1e-9;
    result.losses.push_back(loss);
    const bool last = step + 1 == cfg.train.steps;
    if (lead) {
      std::vector<std::pair<std::string, double>> row = {
          {"loss", loss}, {"lr", lr}, {"grad_norm", grad_norm}, {"tokens_per_s", tok_s},
          {"gflops", gflops}, {"step_time_s", dt}};
      // The whole job's model FLOP/s over the whole job's peak.
      const double mfu = peak.per_rank > 0 ? model_flops_token * tok_s / (peak.per_rank * world.size()) : -1.0;
      if (mfu >= 0) row.emplace_back("mfu", mfu);
      if (report_accuracy) row.emplace_back("accuracy", acc);
      if (!finite) row.emplace_back("skipped", 1.0);
      row.insert(row.end(), fp8_row.begin(), fp8_row.end());
      log->write(step + 1, row);
      if (tensorboard) tensorboard->add_scalars(step + 1, "train/", row);
      if (print && (last || !finite || (step + 1) % cfg.train.log_every == 0)) {
        log->print_step(step, loss, lr, grad_norm, tok_s, gflops, mfu, report_accuracy ? acc : -1.0);
        if (fp8) log->print_line(fp8_summary(fp8_row));
      }
      if (print && !fp8_warning.empty()) log->print_line(fp8_warning);
      if (!blowup.empty()) log->print_line(blowup + "\n");
      if (!finite)
        log->print_line(str_cat("lintrain: warning: step ", step + 1, " not applied: ",
                                watch.hint(loss, grad_norm, lr), " (", counters.bad_steps_in_row,
                                " in a row, ", counters.bad_steps_total, " in all; train.max_bad_steps = ",
                                cfg.train.max_bad_steps, ")\n"));
    }
    if (counters.bad_steps_in_row >= cfg.train.max_bad_steps) {
      checkpoints.finish();
      throw Error(str_cat("training diverged: ", counters.bad_steps_in_row,
                          " steps in a row had a non-finite loss or gradient norm (train.max_bad_steps = ",
                          cfg.train.max_bad_steps, "), the last at step ", step + 1, ": ",
                          watch.hint(loss, grad_norm, lr), ". No update of those steps was applied; the "
                          "newest checkpoint in ", checkpoints.describe(), " holds finite weights"));
    }

    if (last || (cfg.train.eval_every > 0 && (step + 1) % cfg.train.eval_every == 0)) {
      if (failpoint("train.sigterm-before-eval", step + 1)) std::raise(SIGTERM);  // a stop during the evaluation
      Totals ev;
      if (!evaluate_step(step + 1, ev)) {
        // A stop signal came during the evaluation: save and stop now (the
        // resumed run evaluates these weights again first).
        stop = true;
        final_eval_cut = last;
        if (print) log->print_line(str_cat("lintrain: evaluation at step ", step + 1, " cut short by a stop signal\n"));
      }
      if (!stop || (last && !final_eval_cut)) {
        result.eval_loss = ev.loss();
        result.eval_accuracy = ev.accuracy();
      }
    }
    // A periodic export that fails (disk full, a directory in the way) costs
    // that export only: the run warns and goes on; the next one tries again.
    if (lead && !last && cfg.train.export_every > 0 && (step + 1) % cfg.train.export_every == 0) {
      try {
        export_run_weights(model, cfg, step + 1);
      } catch (const Error& e) {
        log->print_line(str_cat("lintrain: warning: the export of step ", step + 1, " failed: ", e.what(),
                                "; training goes on and the next export tries again\n"));
      }
    }
    if (stop || checkpoints.due(step + 1, cfg.train.steps)) {
      const watchdog::Allowance saving(cfg.checkpoint.timeout_s);  // others wait in the next collective meanwhile
      // The final save of a finished run: a stop signal cuts its wait short.
      checkpoints.save(step + 1, state.snapshot(), /*wait=*/last || stop, /*stop_cuts_wait=*/last && !stop);
    }
    checkpoints.report(log.get(), print);
    failpoint_kill("train.kill-after-step", step + 1);
    // A stop asked for during the last step (after its evaluation) ends
    // nothing early: the run finishes, exports and is complete.
    if (stop && (!last || final_eval_cut)) {
      result.stopped_by_signal = stop_cause();
      break;
    }
  }
  // The barrier waits for rank 0's last save (up to checkpoint.timeout_s): the watchdog allows for it.
  watchdog::Allowance finishing(cfg.checkpoint.timeout_s);
  checkpoints.finish();
  checkpoints.report(log.get(), print);
  // No rank leaves before rank 0 has published the last checkpoint: under
  // srun --kill-on-bad-exit a rank that exits with 75 first would end the rest.
  world.barrier();
  finishing.end();
  double final_save_cut = checkpoints.cut_by_signal() ? 1 : 0;  // rank 0's save; every rank ends alike
  world.all_reduce_f64(&final_save_cut, 1);
  if (log) log->finish();
  if (tensorboard) tensorboard->finish();
  result.tokens_per_s = static_cast<double>(counters.step - first_step) * step_tokens / seconds_since(run_start);
  const int64_t ran = counters.step - first_step, skipped = counters.bad_steps_total - bad_before;
  const bool saved_last = checkpoints.due(cfg.train.steps, cfg.train.steps) || result.stopped_by_signal ||
                          stop_signal_received() != 0;
  const bool trained = counters.step == cfg.train.steps;
  if (ran > 0 && counters.bad_steps_total == counters.step && !result.stopped_by_signal)
    throw Error(str_cat("no step of this run was applied: all ", counters.step, " had a non-finite loss or gradient norm (",
                        watch.hint(last_loss, last_norm, learning_rate(cfg.schedule, optim_peak_lr(cfg.optim), counters.step - 1,
                                                       cfg.train.steps)),
                        "); the weights are unchanged and not exported"));
  // The weights go out even when the final evaluation was cut short: the
  // training itself is done (a rerun finishes the evaluation). An export
  // that fails loses no training: the run saves a checkpoint of the final
  // step when it has none, and says how to write the export from it.
  if (trained) {
    double export_failed = 0;
    std::string export_error;
    if (lead) {
      try {
        export_run_weights(model, cfg, counters.step);
      } catch (const Error& e) {
        export_failed = 1;
        export_error = e.what();
      }
    }
    world.all_reduce_f64(&export_failed, 1);
    if (export_failed > 0) {
      if (!saved_last) {
        const watchdog::Allowance saving(cfg.checkpoint.timeout_s);
        checkpoints.save(counters.step, state.snapshot(), /*wait=*/true);
        checkpoints.finish();
        checkpoints.report(log.get(), print);
        world.barrier();
      }
      if (!lead) return result;  // rank 0 reports and ends the job
      const std::string where = checkpoints.last_where();
      throw Error(str_cat("the export of the trained weights (step ", counters.step, ") failed: ", export_error,
                          checkpoints.last_ok()
                              ? str_cat(". The training is not lost: checkpoint ", where, " holds it. Fix the "
                                        "problem, then run the same command again (it writes the export and "
                                        "exits), or `lintrain ckpt export ", where, " --out DIR`")
                              : str_cat(". Its checkpoint failed too (", checkpoints.last_error(),
                                        "): the steps since the last good checkpoint are lost; free space or fix "
                                        "checkpoint.dir and run.out_dir, then run the same command again")));
    }
  }
  if (final_save_cut > 0) {
    result.stopped_by_signal = stop_cause();
    if (print) {
      std::printf("lintrain: stopped by %s while saving the final checkpoint (step %lld): it was not saved (%s); "
                  "the trained weights are in %s/model.safetensors. Run the same command again to redo the steps "
                  "since the last saved checkpoint and save it (exit code %d)\n",
                  signal_name(result.stopped_by_signal), static_cast<long long>(counters.step),
                  checkpoints.last_error().c_str(), cfg.run.out_dir.c_str(), kExitPreempted);
      std::fflush(stdout);
    }
    return result;
  }
  if (result.stopped_by_signal) {
    if (print) {
      const char* what = final_eval_cut ? "during the final evaluation" : "after step";
      const std::string when = final_eval_cut ? str_cat("of step ", counters.step) : str_cat(counters.step);
      if (checkpoints.last_ok())
        std::printf("lintrain: stopped by %s %s %s; checkpoint %s saved%s. Run the same command again to "
                    "%s (exit code %d)\n",
                    signal_name(result.stopped_by_signal), what, when.c_str(), checkpoints.last_where().c_str(),
                    trained ? str_cat(", weights in ", cfg.run.out_dir, "/model.safetensors").c_str() : "",
                    final_eval_cut ? "finish the evaluation" : "continue", kExitPreempted);
      else
        std::printf("lintrain: stopped by %s %s %s, but its checkpoint failed: %s. Running the same "
                    "command again continues from the previous checkpoint (exit code %d)\n",
                    signal_name(result.stopped_by_signal), what, when.c_str(), checkpoints.last_error().c_str(),
                    kExitPreempted);
      std::fflush(stdout);
    }
    return result;
  }
  // A run whose final checkpoint failed is not done: the error says so
  // (exit 1) instead of a "done" line above it.
  if (saved_last && !checkpoints.last_ok())
    throw Error(str_cat("the final checkpoint (step ", counters.step, ") could not be saved: ",
                        checkpoints.last_error(), "; the trained weights are in ", cfg.run.out_dir,
                        "/model.safetensors"));
  if (print) {
    std::printf("lintrain: done in %s; weights in %s/model.safetensors%s\n",
                format_duration(seconds_since(run_start)).c_str(), cfg.run.out_dir.c_str(),
                skipped > 0 ? str_cat(" (", skipped, " of ", ran, " steps skipped as non-finite",
                                      counters.bad_steps_in_row > 0
                                          ? str_cat(", the last ", counters.bad_steps_in_row, " in a row")
                                          : std::string(),
                                      ")")
                                  .c_str()
                            : "");
    if (stop_signal_received() != 0)
      std::printf("lintrain: %s arrived after the last step; the run is complete\n",
                  signal_name(stop_signal_received()));
  }
  return result;
}

}  // namespace lintrain
