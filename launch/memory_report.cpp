#include "launch/memory_report.h"

#include <cstdio>
#include <vector>

#include "layers/model.h"
#include "optim/param_groups.h"
#include "runtime/error.h"

namespace lintrain {

std::string run_memory_report(const RunConfig& cfg) {
  const ParamTable table = make_param_table(cfg.model);
  return str_cat("model ", cfg.run.name, ": ", table.param_count(), " parameters in ", table.size(), " tensors\n",
                 format_optimizer_report(cfg.optim, plan_optimizer_memory(cfg.optim, table)));
}

void check_optimizer_plan(const RunConfig& cfg) { plan_optimizer_memory(cfg.optim, make_param_table(cfg.model)); }

namespace {

struct PaperShape {
  const char* name;
  int hidden, intermediate, heads, layers, galore_rank;
};

// LLaMA configurations of the GaLore paper (Zhao et al. 2024, Table 2 and
// its configs): vocabulary 32000, untied embeddings, softmax attention.
const PaperShape kShapes[] = {
    {"LLaMA 60M", 512, 1376, 8, 8, 128},
    {"LLaMA 130M", 768, 2048, 12, 12, 256},
    {"LLaMA 350M", 1024, 2736, 16, 24, 256},
    {"LLaMA 1B", 2048, 5461, 32, 24, 512},
};

std::string cell(int64_t floats, int64_t params, int64_t adamw_floats) {
  char buf[96];
  const double bytes = 4.0 * static_cast<double>(floats);
  if (bytes >= 1024.0 * 1048576.0) std::snprintf(buf, sizeof buf, "%.2f GiB", bytes / (1024.0 * 1048576.0));
  else std::snprintf(buf, sizeof buf, "%.0f MiB", bytes / 1048576.0);
  char out[160];
  std::snprintf(out, sizeof out, "%s, %.2f B/param, %.0f%%", buf, bytes / static_cast<double>(params),
                100.0 * static_cast<double>(floats) / static_cast<double>(adamw_floats));
  return out;
}

}  // namespace

std::string optimizer_memory_table() {
  struct Column {
    const char* title;
    const char* optimizer;
    const char* proj_type;  // FRUGAL only
  };
  const Column columns[] = {{"AdamW", "adamw", ""},           {"Lion", "lion", ""},
                            {"SPAM", "spam", ""},             {"GaLore (rank r)", "galore", ""},
                            {"FRUGAL ρ=0.25, svd", "frugal", "svd"}, {"FRUGAL ρ=0.25, blockwise", "frugal", "blockwise"}};
  std::string out = "| model | params | r |";
  std::string rule = "|---|---|---|";
  for (const Column& c : columns) {
    out += str_cat(" ", c.title, " |");
    rule += "---|";
  }
  out += "\n" + rule + "\n";
  for (const PaperShape& s : kShapes) {
    ModelConfig m;
    m.vocab_size = 32000;
    m.hidden_size = s.hidden;
    m.intermediate_size = s.intermediate;
    m.num_attention_heads = s.heads;
    m.num_hidden_layers = s.layers;
    m.layer_pattern = "S";
    const ParamTable table = make_param_table(m);
    char params[32];
    std::snprintf(params, sizeof params, "%.1fM", static_cast<double>(table.param_count()) / 1e6);
    out += str_cat("| ", s.name, " | ", params, " | ", s.galore_rank, " |");
    for (const Column& c : columns) {
      OptimConfig oc;
      oc.name = c.optimizer;
      oc.galore.rank = s.galore_rank;
      if (*c.proj_type) oc.frugal.proj_type = c.proj_type;
      const OptimizerMemory mem = plan_optimizer_memory(oc, table);
      out += str_cat(" ", cell(mem.state_floats, mem.params, mem.adamw_state_floats), " |");
    }
    out += "\n";
  }
  return out;
}

}  // namespace lintrain
