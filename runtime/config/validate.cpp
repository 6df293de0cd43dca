// The rules between keys (and the data file), checked once after the file and
// every override are applied, so `--set` can fix a file that breaks one.
// Single-key ranges and choices are the table's job (schema.cpp), not repeated
// here. World size against parallel.sequence x parallel.data is checked at
// launch, where the world is known.
#include <filesystem>
#include <system_error>

#include "runtime/config/parse.h"
#include "runtime/error.h"

namespace lintrain::config {
namespace {

namespace fs = std::filesystem;

// "248 or 252": the multiples of `step` nearest to `x`, for "use a multiple of" hints.
std::string nearby_multiples(int x, int step) {
  const int below = x / step * step, above = below + step;
  return below > 0 ? str_cat(below, " or ", above) : std::to_string(above);
}

std::string divisors_text(int n) {
  std::string out;
  for (int d = 1; d <= n; ++d)
    if (n % d == 0) out += str_cat(out.empty() ? "" : ", ", d);
  return out;
}

void check_model(const ModelConfig& m, const KeyOrigins& o) {
  const int H = m.num_attention_heads, C = m.hidden_size;
  if (C % H != 0)
    fail(o.where({"model.hidden_size", "model.num_attention_heads"}),
         str_cat("model.hidden_size ", C, " is not divisible by model.num_attention_heads ", H,
                 "; use a hidden_size of ", nearby_multiples(C, 2 * H), " (even head_dim) or another head count"));
  if (m.num_key_value_heads > 0 && H % m.num_key_value_heads != 0)
    fail(o.where({"model.num_key_value_heads", "model.num_attention_heads"}),
         str_cat("model.num_attention_heads ", H, " is not divisible by model.num_key_value_heads ",
                 m.num_key_value_heads, "; use one of ", H <= 1024 ? divisors_text(H) : "its divisors",
                 " (or 0 for one kv head per query head)"));
  if (m.head_dim() % 2 != 0)
    fail(o.where({"model.hidden_size", "model.num_attention_heads"}),
         str_cat("head dimension model.hidden_size / model.num_attention_heads = ", C, " / ", H, " = ", m.head_dim(),
                 " must be even for RoPE; change hidden_size or num_attention_heads"));
}

void check_data_path(const DataConfig& d, const KeyOrigins& o) {
  if (d.path.empty())
    fail(o.where({"data.kind", "data.path"}),
         str_cat("data.path is empty; data.kind ", d.kind, " needs ",
                 d.kind == "text" ? "a text file or a directory of them" : "a token file",
                 " (or use data.kind: mqar, which needs no data)"));
  const std::string where = o.where({"data.path"});
  std::error_code ec;
  const fs::file_status st = fs::status(d.path, ec);
  if (!fs::exists(st)) {
    std::string cwd = fs::current_path(ec).string();
    fail(where, str_cat("data.path '", d.path, "' does not exist",
                        fs::path(d.path).is_relative() ? str_cat(" (relative to the working directory ", cwd, ")") : "",
                        "; fix the path or use data.kind: mqar"));
  }
  if (d.kind == "tokens" && !fs::is_regular_file(st))
    fail(where, str_cat("data.path '", d.path, "' is not a regular file; data.kind tokens reads one token file"));
  if (d.kind == "text" && !fs::is_regular_file(st) && !fs::is_directory(st))
    fail(where, str_cat("data.path '", d.path, "' is neither a file nor a directory"));
}

void check_data(const RunConfig& c, const KeyOrigins& o, bool check_files) {
  const DataConfig& d = c.data;
  if (d.kind == "text" && c.model.vocab_size < 256)
    fail(o.where({"model.vocab_size", "data.kind"}),
         str_cat("model.vocab_size ", c.model.vocab_size, " is too small for data.kind text, whose byte-level ",
                 "tokens need at least 256"));
  if (d.kind == "text" || d.kind == "tokens") {
    if (check_files) check_data_path(d, o);
    // Evaluation always runs at the end of training and reads the held-out split.
    if (d.valid_fraction <= 0.0)
      fail(o.where({"data.valid_fraction", "data.kind"}),
           str_cat("data.valid_fraction is 0, but evaluation needs held-out data; use e.g. 0.05"));
  }
  if (d.kind == "mqar") {
    // The layout of runtime/data/mqar.h: P key-value pairs, then Q query slots.
    const int64_t P = d.mqar_pairs, Q = d.mqar_queries > 0 ? d.mqar_queries : d.mqar_pairs;
    if (d.seq_len < 2 * P + Q)
      fail(o.where({"data.seq_len", "data.mqar_pairs", "data.mqar_queries", "data.kind"}),
           str_cat("data.seq_len ", d.seq_len, " is too short for mqar with ", P, " pairs and ", Q,
                   " queries: it needs 2 * pairs + queries = ", 2 * P + Q,
                   "; raise data.seq_len or lower data.mqar_pairs"));
    if (c.model.vocab_size < 2 * P + 2)
      fail(o.where({"model.vocab_size", "data.mqar_pairs", "data.kind"}),
           str_cat("model.vocab_size ", c.model.vocab_size, " is too small for mqar with ", P,
                   " pairs: distinct keys and values need at least 2 * pairs + 2 = ", 2 * P + 2));
  }
}

}  // namespace

}  // namespace lintrain::config

namespace lintrain {
double optim_default_lr(const std::string& name) { return name == "lion" ? 1e-4 : 1e-3; }
}  // namespace lintrain

namespace lintrain::config {

void validate_run_config(const RunConfig& c, const KeyOrigins& o, bool check_files) {
  check_model(c.model, o);
  check_data(c, o, check_files);
  if (c.data.seq_len % c.parallel.sequence != 0)
    fail(o.where({"data.seq_len", "parallel.sequence"}),
         str_cat("data.seq_len ", c.data.seq_len, " is not divisible by parallel.sequence ", c.parallel.sequence,
                 " (each sequence-parallel rank takes an equal chunk); use a seq_len of ",
                 nearby_multiples(c.data.seq_len, c.parallel.sequence)));
}

}  // namespace lintrain::config
