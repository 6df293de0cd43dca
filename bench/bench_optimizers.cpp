// Wall time of one optimizer step for every update rule, relative to AdamW,
// on the parameter table of a model (no forward/backward: random gradients).
// Rules that refresh a subspace (GaLore's SVD, FRUGAL's subspace change, SPAM's
// mask redraw) are timed separately on a refresh step and on ordinary steps,
// and reported amortised over their gap:
//   amortised = (refresh + (gap - 1) * ordinary) / gap
//   usage: bench_optimizers [--model tiny|60m|130m] [--steps 5] [--threads 0]
//                           [--galore-rank R] [--svd exact|randomized]
// "tiny" is examples/tiny.yaml's model; 60m/130m are the GaLore paper's LLaMA shapes.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "optim/param_groups.h"
#include "layers/model.h"
#include "runtime/cpu/gemm.h"
#include "runtime/rng.h"

using namespace lintrain;

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

ModelConfig model_for(const std::string& name, int* galore_rank) {
  ModelConfig m;
  if (name == "tiny") {
    m.vocab_size = 256, m.hidden_size = 128, m.num_hidden_layers = 4, m.num_attention_heads = 4;
    m.intermediate_size = 344, m.layer_pattern = "LLLS";
    *galore_rank = 32;
  } else if (name == "60m") {
    m.vocab_size = 32000, m.hidden_size = 512, m.num_hidden_layers = 8, m.num_attention_heads = 8;
    m.intermediate_size = 1376, m.layer_pattern = "S";
    *galore_rank = 128;
  } else if (name == "130m") {
    m.vocab_size = 32000, m.hidden_size = 768, m.num_hidden_layers = 12, m.num_attention_heads = 12;
    m.intermediate_size = 2048, m.layer_pattern = "S";
    *galore_rank = 256;
  } else {
    std::fprintf(stderr, "bench_optimizers: --model must be tiny, 60m or 130m, got '%s'\n", name.c_str());
    std::exit(2);
  }
  return m;
}

// The step count at which each rule changes its subspace, and its gap.
int refresh_gap(const OptimConfig& c) {
  if (c.name == "galore") return c.galore.update_proj_gap;
  if (c.name == "frugal") return c.frugal.update_gap;
  if (c.name == "spam") return c.spam.reset_interval;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  select_blas_kernels(argc, argv);
  std::string model = "tiny", svd = "exact";
  int steps = 5, threads = 0, rank_override = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&] {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_optimizers: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return std::string(argv[++i]);
    };
    if (a == "--model") model = next();
    else if (a == "--steps") steps = std::atoi(next().c_str());
    else if (a == "--threads") threads = std::atoi(next().c_str());
    else if (a == "--galore-rank") rank_override = std::atoi(next().c_str());
    else if (a == "--svd") svd = next();
    else {
      std::fprintf(stderr, "bench_optimizers: unknown option '%s'\n", a.c_str());
      return 2;
    }
  }
  if (threads > 0) set_num_threads(threads);
  int galore_rank = 0;
  const ModelConfig mc = model_for(model, &galore_rank);
  if (rank_override > 0) galore_rank = rank_override;
  const ParamTable table = make_param_table(mc);
  FlatBuffer params(table), grads(table);
  Rng rng(1);
  for (int64_t i = 0; i < params.numel(); ++i) params.data()[i] = static_cast<float>(0.02 * rng.normal());
  for (int64_t i = 0; i < grads.numel(); ++i) grads.data()[i] = static_cast<float>(1e-3 * rng.normal());

  std::printf("model %s: %.2fM parameters, %d threads, galore rank %d (%s SVD)\n", model.c_str(),
              static_cast<double>(table.param_count()) / 1e6, num_threads(), galore_rank, svd.c_str());
  std::printf("%-10s %12s %12s %8s %14s %10s %12s\n", "optimizer", "step ms", "refresh ms", "gap", "amortised ms",
              "vs AdamW", "state MiB");
  double adamw_ms = 0;
  struct Variant {
    const char* label;
    const char* name;
    const char* frugal_proj;
  };
  const Variant variants[] = {{"adamw", "adamw", ""},   {"lion", "lion", ""},
                              {"spam", "spam", ""},     {"galore", "galore", ""},
                              {"frugal", "frugal", "svd"}, {"frugal-rk", "frugal", "randk"},
                              {"frugal-bw", "frugal", "blockwise"}};
  for (const Variant& v : variants) {
    bool registered = false;
    for (const UpdateRuleInfo& r : update_rules()) registered |= v.name == std::string(r.name);
    if (!registered) continue;
    OptimConfig c;
    c.name = v.name;
    c.weight_decay = 0.01;
    c.galore.rank = galore_rank;
    c.galore.svd = svd;
    if (*v.frugal_proj) c.frugal.proj_type = v.frugal_proj;
    auto opt = make_optimizer(Context{}, c, table, 3);
    // Step 1 is a refresh for every subspace rule; time it, then ordinary steps.
    double t0 = now_s();
    opt->step(params, grads, 1e-4);
    const double first_ms = 1e3 * (now_s() - t0);
    std::vector<double> times;
    for (int s = 0; s < steps; ++s) {
      t0 = now_s();
      opt->step(params, grads, 1e-4);
      times.push_back(1e3 * (now_s() - t0));
    }
    std::sort(times.begin(), times.end());
    const double step_ms = times[times.size() / 2];
    const int gap = refresh_gap(c);
    const double amortised = gap > 0 ? (first_ms + (gap - 1) * step_ms) / gap : step_ms;
    if (std::string(v.name) == "adamw") adamw_ms = amortised;
    char refresh[32] = "-", gap_text[16] = "-";
    if (gap > 0) {
      std::snprintf(refresh, sizeof refresh, "%.1f", first_ms);
      std::snprintf(gap_text, sizeof gap_text, "%d", gap);
    }
    std::printf("%-10s %12.2f %12s %8s %14.2f %9.2fx %12.2f\n", v.label, step_ms, refresh, gap_text, amortised,
                adamw_ms > 0 ? amortised / adamw_ms : 0.0, opt->state_bytes() / 1048576.0);
  }
  return 0;
}
