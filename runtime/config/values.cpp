// Typed values from YAML nodes: integers, floats, booleans, strings, enums and
// lists, each checked against its key's range or choices. Numbers are read
// from the scalar's text with exact grammars (no "1e3" integers, no "0x10", no
// NaN) so a typo is an error, not a surprise.
#include <algorithm>
#include <cerrno>
#include <climits>
#include <cfloat>
#include <cmath>
#include <cstdlib>

#include "runtime/config/parse.h"
#include "runtime/error.h"

namespace lintrain::config {

std::string Place::at(const YAML::Node& node) const {
  if (!is_file || node.Mark().is_null()) return source;
  return str_cat(source, ":", node.Mark().line + 1);
}

void fail(const std::string& where, const std::string& what) { throw ConfigError(str_cat(where, ": ", what)); }

namespace {

// How a node reads in a message: 'abc', an empty value, a list, a mapping.
std::string describe(const YAML::Node& node) {
  if (node.IsNull()) return "an empty value";
  if (node.IsSequence()) return "a list";
  if (node.IsMap()) return "a mapping";
  return str_cat("'", node.Scalar(), "'");
}

bool parse_int64(const std::string& s, int64_t* out) {
  const size_t start = (!s.empty() && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
  if (s.size() == start || s.find_first_not_of("0123456789", start) != std::string::npos) return false;
  errno = 0;
  const long long v = std::strtoll(s.c_str(), nullptr, 10);
  if (errno == ERANGE) return false;
  *out = v;
  return true;
}

// A decimal number: digits with an optional sign, point and exponent.
bool parse_double(const std::string& s, double* out) {
  if (s.empty() || s.find_first_not_of("0123456789+-.eE") != std::string::npos) return false;
  if (s.find_first_of("0123456789") == std::string::npos) return false;
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(s.c_str(), &end);
  if (*end != '\0' || errno == ERANGE || !std::isfinite(v)) return false;
  *out = v;
  return true;
}

// "adamw" or "one of mqar, text, tokens".
std::string choices_text(const std::vector<std::string>& choices) {
  std::string out = choices.size() == 1 ? "" : "one of ";
  for (size_t i = 0; i < choices.size(); ++i) out += str_cat(i == 0 ? "" : ", ", yaml_quote(choices[i]));
  return out;
}

std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates) {
  const std::string n = nearest(word, candidates);
  return n.empty() ? "" : str_cat("; did you mean '", n, "'?");
}

// Every number of a run file reaches the kernels as an f32: one that f32
// cannot hold (above FLT_MAX it becomes inf, below FLT_MIN a denormal or 0,
// so an epsilon of 1e-50 silently becomes no epsilon) is refused for every key.
// `zero_ok`: whether the key takes 0, so the underflow advice names only
// values the key accepts.
void check_f32(const std::string& name, double x, const std::string& text, const std::string& where,
               bool zero_ok = true) {
  const double a = std::fabs(x);
  if (a > FLT_MAX)
    fail(where, str_cat(name, ": ", text, " overflows f32 (largest ", FLT_MAX, "), so it would be inf in training; ",
                        "use a smaller value"));
  if (a != 0 && a < FLT_MIN)
    fail(where, str_cat(name, ": ", text, " underflows f32 (smallest normal ", FLT_MIN,
                        "), so it would be a denormal or 0 in training; use ", zero_ok ? "0 or " : "",
                        "a value >= 1.2e-38"));
}

void check_range(const KeySpec& key, const std::string& name, double x, const std::string& text,
                 const std::string& where) {
  if (!key.range.contains(x)) fail(where, str_cat(name, ": must be ", key.range.describe(), ", got ", text));
  check_f32(name, x, text, where, key.range.contains(0.0));
}

// A name, path or choice is one line of printable text. Control characters
// (a TAB too: invisible in logs and shell listings) are refused here; a quoted value that runs past its line (what an unclosed
// quote does: YAML folds the rest of the file into it) in check_one_line.
void check_printable(const std::string& name, const std::string& text, const std::string& where) {
  for (unsigned char c : text)
    if (c < 0x20 || c == 0x7f)
      fail(where, str_cat(name, ": the value holds a control character (code ", int(c),
                          "); names, paths and choices are one line of printable text"));
}

Value parse_scalar(const KeySpec& key, const std::string& text, const std::string& where) {
  const std::string& name = key.name;
  switch (key.type) {
    case KeyType::kInt: {
      int64_t v = 0;
      if (!parse_int64(text, &v)) fail(where, str_cat(name, ": expected an integer, got '", text, "'"));
      if (v < INT_MIN || v > INT_MAX)
        fail(where, str_cat(name, ": ", text, " does not fit in a 32-bit int (at most ", INT_MAX, ")"));
      check_range(key, name, static_cast<double>(v), text, where);
      return v;
    }
    case KeyType::kUInt64: {
      int64_t neg = 0;
      if (!text.empty() && text[0] == '-' && parse_int64(text, &neg) && neg < 0)
        fail(where, str_cat(name, ": must be ", key.range.describe(), ", got ", text));
      const size_t start = (!text.empty() && text[0] == '+') ? 1 : 0;
      if (text.size() == start || text.find_first_not_of("0123456789", start) != std::string::npos)
        fail(where, str_cat(name, ": expected an integer, got '", text, "'"));
      errno = 0;
      const unsigned long long v = std::strtoull(text.c_str(), nullptr, 10);
      if (errno == ERANGE) fail(where, str_cat(name, ": ", text, " does not fit in 64 bits"));
      return uint64_t{v};
    }
    case KeyType::kFloat: {
      double v = 0;
      if (!parse_double(text, &v)) fail(where, str_cat(name, ": expected a number, got '", text, "'"));
      check_range(key, name, v, text, where);
      return v;
    }
    case KeyType::kBool: {
      if (text == "true" || text == "True" || text == "TRUE") return true;
      if (text == "false" || text == "False" || text == "FALSE") return false;
      fail(where, str_cat(name, ": expected true or false, got '", text, "'"));
    }
    case KeyType::kString:
      check_printable(name, text, where);
      if (key.check) {
        const std::string problem = key.check(text);
        if (!problem.empty()) fail(where, str_cat(name, ": ", problem, "; got '", text, "'"));
      }
      return text;
    case KeyType::kEnum:
      check_printable(name, text, where);
      if (std::find(key.choices.begin(), key.choices.end(), text) == key.choices.end())
        fail(where, str_cat(name, ": expected ", choices_text(key.choices), ", got '", text, "'",
                            did_you_mean(text, key.choices)));
      return text;
    case KeyType::kTriState:
      if (text == "-1") return int64_t{-1};
      if (text == "0" || text == "false") return int64_t{0};
      if (text == "1" || text == "true") return int64_t{1};
      fail(where, str_cat(name, ": expected -1 (the variant's default), false (0) or true (1), got '", text, "'"));
    case KeyType::kWordOrFloat: {
      if (std::find(key.choices.begin(), key.choices.end(), text) != key.choices.end()) return text;
      double v = 0;
      if (!parse_double(text, &v))
        fail(where, str_cat(name, ": expected ", choices_text(key.choices), ", or a number ", key.range.describe(),
                            ", got '", text, "'", did_you_mean(text, key.choices)));
      check_range(key, name, v, text, where);
      return format_float(v);  // one spelling per number, so configs compare and round-trip
    }
    case KeyType::kFloatList:
    case KeyType::kStringList:
    case KeyType::kGroupRules: break;  // handled by parse_value
  }
  fail(where, str_cat(name, ": internal error: no scalar reader for this key"));
}

void check_one_line(const std::string& name, const YAML::Node& node, const std::string& where, const Place& place);

// A list of strings: a YAML list of scalars, or one scalar as a list of one.
std::vector<std::string> parse_string_list(const std::string& name, const YAML::Node& node, const std::string& where,
                                           const Place& place, bool allow_empty) {
  std::vector<std::string> out;
  if (node.IsScalar()) {
    out.push_back(node.Scalar());
  } else if (node.IsSequence()) {
    for (size_t i = 0; i < node.size(); ++i) {
      const YAML::Node item = node[i];
      if (!item.IsScalar())
        fail(place.at(item), str_cat(name, "[", i, "]: expected a string, got ", describe(item)));
      out.push_back(item.Scalar());
    }
  } else if (!node.IsNull()) {
    fail(where, str_cat(name, ": expected a list of strings like [\"*norm*\"], got ", describe(node)));
  }
  for (const std::string& x : out) {
    if (x.empty()) fail(where, str_cat(name, ": an empty pattern matches nothing; remove it"));
    check_printable(name, x, where);
  }
  if (node.IsScalar()) check_one_line(name, node, where, place);
  for (size_t i = 0; node.IsSequence() && i < node.size(); ++i) check_one_line(name, node[i], where, place);
  if (out.empty() && !allow_empty) fail(where, str_cat(name, ": needs at least one pattern, e.g. [\"*\"]"));
  return out;
}

std::vector<ParamGroupRule> parse_group_rules(const KeySpec& key, const YAML::Node& node, const std::string& where,
                                              const Place& place) {
  static const std::vector<std::string> fields = {"match", "ndim", "optimizer", "lr_scale", "weight_decay"};
  std::vector<ParamGroupRule> rules;
  if (node.IsNull()) return rules;
  if (!node.IsSequence())
    fail(where, str_cat(key.name, ": expected a list of rules like [{match: \"model.layers.*\", ndim: 2, "
                                  "optimizer: galore}], got ", describe(node)));
  for (size_t i = 0; i < node.size(); ++i) {
    const YAML::Node item = node[i];
    const std::string item_name = str_cat(key.name, "[", i, "]");
    if (!item.IsMap())
      fail(place.at(item), str_cat(item_name, ": expected a mapping with keys match, ndim, optimizer, lr_scale, "
                                   "weight_decay, got ", describe(item)));
    ParamGroupRule r;
    bool has_match = false;
    for (const auto& entry : item) {
      const std::string field = entry.first.Scalar();
      const YAML::Node& v = entry.second;
      const std::string fwhere = place.at(entry.first);
      const std::string fname = str_cat(item_name, ".", field);
      auto number = [&](double lo, bool lo_open) {
        double x = 0;
        if (!v.IsScalar() || !parse_double(v.Scalar(), &x)) fail(fwhere, str_cat(fname, ": expected a number, got ", describe(v)));
        if (lo_open ? !(x > lo) : !(x >= lo)) fail(fwhere, str_cat(fname, ": must be ", lo_open ? "> " : ">= ", lo, ", got ", v.Scalar()));
        check_f32(fname, x, v.Scalar(), fwhere);
        return x;
      };
      if (field == "match") {
        r.match = parse_string_list(fname, v, fwhere, place, false);
        has_match = true;
      } else if (field == "ndim") {
        int64_t n = 0;
        if (!v.IsScalar() || !parse_int64(v.Scalar(), &n) || n < 0 || n > 8)
          fail(fwhere, str_cat(fname, ": expected a rank 0..8 (0 = any), got ", describe(v)));
        r.ndim = static_cast<int>(n);
      } else if (field == "optimizer") {
        const std::string o = v.IsScalar() ? v.Scalar() : "";
        if (std::find(key.choices.begin(), key.choices.end(), o) == key.choices.end())
          fail(fwhere, str_cat(fname, ": expected ", choices_text(key.choices), ", got ", describe(v), did_you_mean(o, key.choices)));
        r.optimizer = o;
      } else if (field == "lr_scale") {
        r.lr_scale = number(0, true);
      } else if (field == "weight_decay") {
        r.weight_decay = number(0, false);
      } else {
        fail(fwhere, str_cat(item_name, ": unknown key '", field, "'", did_you_mean(field, fields),
                             "; a rule has match, ndim, optimizer, lr_scale, weight_decay"));
      }
    }
    if (!has_match)
      fail(place.at(item), str_cat(item_name, ": a rule needs match (globs of tensor names, e.g. \"*\")"));
    rules.push_back(std::move(r));
  }
  return rules;
}

// A quoted scalar whose closing quote is not on its own line. Run-file values
// are names, paths, numbers and choices, none of which spans lines, so this
// is an unclosed quote that swallowed what follows it.
void check_one_line(const std::string& name, const YAML::Node& node, const std::string& where, const Place& place) {
  if (!place.text || node.Mark().is_null() || node.Mark().pos < 0) return;
  const std::string& t = *place.text;
  const size_t pos = static_cast<size_t>(node.Mark().pos);
  if (pos >= t.size() || (t[pos] != '"' && t[pos] != '\'')) return;
  const char q = t[pos];
  for (size_t i = pos + 1; i < t.size() && t[i] != '\n'; ++i) {
    if (q == '"' && t[i] == '\\') {
      ++i;  // an escaped character
    } else if (t[i] == q) {
      if (q == '\'' && i + 1 < t.size() && t[i + 1] == '\'') ++i;  // '' is a quote inside '...'
      else return;
    }
  }
  std::string start = t.substr(pos, std::min<size_t>(40, t.find('\n', pos) - pos));
  fail(where, str_cat(name, ": the quoted value ", start, " is not closed on its line, so YAML took the rest of the ",
                      "file into it; close the quote (", q, ") on that line"));
}

}  // namespace

Value parse_value(const KeySpec& key, const YAML::Node& node, const std::string& where, const Place& place) {
  const bool textual = key.type == KeyType::kString || key.type == KeyType::kEnum || key.type == KeyType::kWordOrFloat;
  if (key.type == KeyType::kStringList) return parse_string_list(key.name, node, where, place, true);
  if (key.type == KeyType::kGroupRules) return parse_group_rules(key, node, where, place);
  if (key.type == KeyType::kFloatList) {
    const std::string want = str_cat("a list of ", key.list_len, " numbers ", key.range.describe());
    if (!node.IsSequence()) fail(where, str_cat(key.name, ": expected ", want, " like [0.9, 0.95], got ", describe(node)));
    if (node.size() != key.list_len)
      fail(where, str_cat(key.name, ": expected ", want, ", got ", node.size(), " numbers"));
    std::vector<double> out;
    for (size_t i = 0; i < node.size(); ++i) {
      const YAML::Node item = node[i];
      const std::string item_where = place.at(item);
      const std::string item_name = str_cat(key.name, "[", i, "]");
      double v = 0;
      if (!item.IsScalar() || !parse_double(item.Scalar(), &v))
        fail(item_where, str_cat(item_name, ": expected a number, got ", describe(item)));
      if (!key.range.contains(v))
        fail(item_where, str_cat(item_name, ": must be ", key.range.describe(), ", got ", item.Scalar()));
      check_f32(item_name, v, item.Scalar(), item_where);
      out.push_back(v);
    }
    return out;
  }
  if (node.IsScalar()) check_one_line(key.name, node, where, place);
  // An empty value is the empty string for textual keys (`dir:` = `dir: ""`).
  if (node.IsNull() && textual) return parse_scalar(key, "", where);
  if (!node.IsScalar()) {
    const char* want = key.type == KeyType::kInt || key.type == KeyType::kUInt64 ? "an integer"
                       : key.type == KeyType::kFloat                            ? "a number"
                       : key.type == KeyType::kBool                             ? "true or false"
                                                                                : "a single value";
    fail(where, str_cat(key.name, ": expected ", want, ", got ", describe(node)));
  }
  return parse_scalar(key, node.Scalar(), where);
}

std::string nearest(const std::string& word, const std::vector<std::string>& candidates) {
  // Optimal-string-alignment distance: insertions, deletions, substitutions
  // and swaps of neighbours ("hiddne") each cost one.
  auto distance = [](const std::string& a, const std::string& b) {
    const size_t n = a.size(), m = b.size();
    std::vector<std::vector<size_t>> d(n + 1, std::vector<size_t>(m + 1));
    for (size_t i = 0; i <= n; ++i) d[i][0] = i;
    for (size_t j = 0; j <= m; ++j) d[0][j] = j;
    for (size_t i = 1; i <= n; ++i)
      for (size_t j = 1; j <= m; ++j) {
        d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
        if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
          d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    return d[n][m];
  };
  // A short word tolerates one edit; longer ones about one in three characters.
  const size_t allowed = word.size() <= 4 ? 1 : std::max<size_t>(2, word.size() / 3);
  std::string best;
  size_t best_d = allowed + 1;
  for (const std::string& c : candidates) {
    if (c.empty()) continue;
    size_t d = distance(word, c);
    // "warmup" for "warmup_steps": a prefix of three or more characters is a likely abbreviation.
    if (word.size() >= 3 && c.compare(0, word.size(), word) == 0) d = std::min(d, allowed);
    if (d < best_d) {
      best = c;
      best_d = d;
    }
  }
  return best;
}

}  // namespace lintrain::config
