// Loading a run file: read the YAML, walk it against the key table, apply the
// --set overrides in order, then run the cross-field checks once. Also the two
// ways out of a config: the README's Markdown table and the resolved YAML.
#include "runtime/config/config.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <set>

#include "runtime/config/parse.h"
#include "runtime/error.h"

namespace lintrain {
namespace config {

// ---- sections and suggestions -------------------------------------------------------
namespace {

std::string parent_of(const std::string& name) {
  const size_t dot = name.rfind('.');
  return dot == std::string::npos ? "" : name.substr(0, dot);
}

std::string last_part(const std::string& name) {
  const size_t dot = name.rfind('.');
  return dot == std::string::npos ? name : name.substr(dot + 1);
}

std::string join(const std::string& section, const std::string& child) {
  return section.empty() ? child : section + "." + child;
}

// Every section, in table order: "run", "model", "model.linear_attention", ...
const std::vector<std::string>& all_sections() {
  static const std::vector<std::string> sections = [] {
    std::vector<std::string> out;
    for (const KeySpec& k : run_config_keys()) {
      for (std::string s = k.section(); !s.empty(); s = parent_of(s))
        if (std::find(out.begin(), out.end(), s) == out.end()) out.push_back(s);
    }
    return out;
  }();
  return sections;
}

std::string list_text(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

}  // namespace

bool is_section(const std::string& name) {
  if (name.empty()) return true;
  const std::vector<std::string>& s = all_sections();
  return std::find(s.begin(), s.end(), name) != s.end();
}

std::vector<std::string> section_children(const std::string& section) {
  std::vector<std::string> out;
  auto add = [&](const std::string& n) {
    if (std::find(out.begin(), out.end(), n) == out.end()) out.push_back(n);
  };
  for (const KeySpec& k : run_config_keys()) {
    const std::string s = k.section();
    if (s == section) {
      add(k.leaf());
    } else {
      // k lies deeper: name the child subsection of `section` that holds it.
      const std::string head = section.empty() ? "" : section + ".";
      if (s.compare(0, head.size(), head) != 0) continue;
      const std::string rest = s.substr(head.size());
      add(rest.substr(0, rest.find('.')));
    }
  }
  return out;
}

std::string unknown_key_message(const std::string& name, bool looks_like_section) {
  const std::string section = parent_of(name), leaf = last_part(name);
  const std::string what = str_cat("unknown ", looks_like_section ? "section" : "key", " '", name, "'");
  // 1. A typo of a neighbour: model.hiden_size -> model.hidden_size.
  if (is_section(section)) {
    const std::string near = nearest(leaf, section_children(section));
    if (!near.empty()) return str_cat(what, "; did you mean '", join(section, near), "'?");
  }
  // 2. The right name in the wrong place: train.seq_len -> data.seq_len.
  std::vector<std::string> elsewhere;
  for (const KeySpec& k : run_config_keys())
    if (k.leaf() == leaf) elsewhere.push_back(k.name);
  for (const std::string& s : all_sections())
    if (last_part(s) == leaf) elsewhere.push_back(s);
  if (!elsewhere.empty()) {
    std::string alts;
    for (size_t i = 0; i < elsewhere.size(); ++i)
      alts += str_cat(i == 0 ? "'" : i + 1 == elsewhere.size() ? " or '" : ", '", elsewhere[i], "'");
    return str_cat(what, "; did you mean ", alts, "?");
  }
  // 3. A misspelled section in a dotted --set key: modle.hidden_size.
  std::vector<std::string> all;
  for (const KeySpec& k : run_config_keys()) all.push_back(k.name);
  const std::string near = nearest(name, all);
  if (!near.empty()) return str_cat(what, "; did you mean '", near, "'?");
  // 4. Nothing close: list what is valid there.
  if (is_section(section))
    return section.empty() ? str_cat(what, "; valid top-level names: ", list_text(section_children("")))
                           : str_cat(what, "; valid keys in '", section, "': ", list_text(section_children(section)));
  return str_cat(what, "; run `lintrain config --doc` for every key");
}

// ---- KeyOrigins ---------------------------------------------------------------------
void KeyOrigins::set(const std::string& key, const std::string& where) { set_[key] = {++count_, where}; }

std::string KeyOrigins::where(std::initializer_list<const char*> keys) const {
  int latest = 0;
  std::string out = source_;
  for (const char* k : keys) {
    const auto it = set_.find(k);
    if (it != set_.end() && it->second.first > latest) {
      latest = it->second.first;
      out = it->second.second;
    }
  }
  return out;
}

// ---- applying YAML to a RunConfig -----------------------------------------------------
namespace {

void apply_mapping(const YAML::Node& node, const std::string& section, RunConfig& cfg, KeyOrigins& origins,
                   const Place& place);

void apply_entry(const YAML::Node& key_node, const YAML::Node& value, const std::string& name, RunConfig& cfg,
                 KeyOrigins& origins, const Place& place) {
  const std::string where = place.at(key_node);
  if (const KeySpec* key = find_key(name)) {
    key->write(cfg, parse_value(*key, value, where, place));
    origins.set(name, where);
  } else if (is_section(name)) {
    apply_mapping(value, name, cfg, origins, place);
  } else {
    fail(where, unknown_key_message(name, value.IsMap()));
  }
}

void apply_mapping(const YAML::Node& node, const std::string& section, RunConfig& cfg, KeyOrigins& origins,
                   const Place& place) {
  if (node.IsNull()) return;  // `model:` with nothing under it
  if (!node.IsMap()) {
    const std::string got = node.IsScalar() ? str_cat("'", node.Scalar(), "'") : "a list";
    if (section.empty()) fail(place.at(node), str_cat("a run file is a mapping of sections (run, model, data, ...), got ", got));
    fail(place.at(node), str_cat(section, ": expected a mapping of its keys (",
                                 list_text(section_children(section)), "), got ", got));
  }
  std::set<std::string> seen;
  for (const auto& entry : node) {
    const YAML::Node& key_node = entry.first;
    if (!key_node.IsScalar())
      fail(place.at(key_node), str_cat("keys are plain names like hidden_size; got a ",
                                       key_node.IsMap() ? "mapping" : "list", " as a key in '", section, "'"));
    const std::string name = join(section, key_node.Scalar());
    if (!seen.insert(name).second)
      fail(place.at(key_node), str_cat("'", name, "' is given twice in the same mapping; keep one"));
    apply_entry(key_node, entry.second, name, cfg, origins, place);
  }
}

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

// One --set override "section.key=value". The value of a string key is taken
// verbatim (paths may hold '#' or ': '), unless it is quoted; other values are
// YAML ("[0.9, 0.95]", "1.0e-3", "true").
void apply_override(const std::string& text, RunConfig& cfg, KeyOrigins& origins) {
  const Place place{str_cat("--set ", text), false};
  const size_t eq = text.find('=');
  if (eq == std::string::npos) {
    const std::string key = trim(text);
    fail(place.source, find_key(key) ? str_cat("missing '='; write --set ", key, "=VALUE")
                                     : "missing '='; write --set section.key=value, e.g. --set train.steps=50");
  }
  const std::string name = trim(text.substr(0, eq)), raw = text.substr(eq + 1);
  if (name.empty()) fail(place.source, "missing the key before '='; write --set section.key=value");
  const KeySpec* key = find_key(name);
  if (!key && !is_section(name)) fail(place.source, unknown_key_message(name, false));
  const bool textual =
      key && (key->type == KeyType::kString || key->type == KeyType::kEnum || key->type == KeyType::kWordOrFloat);
  const bool quoted = raw.size() >= 2 && (raw.front() == '"' || raw.front() == '\'') && raw.back() == raw.front();
  YAML::Node value;
  if (textual && !quoted) {
    value = YAML::Node(raw);
  } else {
    try {
      value = YAML::Load(raw);
    } catch (const YAML::Exception& e) {
      fail(place.source, str_cat("the value is not valid YAML: ", e.msg));
    }
  }
  if (key) {
    key->write(cfg, parse_value(*key, value, place.source, place));
    origins.set(name, place.source);
  } else {
    apply_mapping(value, name, cfg, origins, place);  // --set 'model.linear_attention={variant: basic}'
  }
}

}  // namespace
}  // namespace config

// ---- public API ---------------------------------------------------------------------
namespace {

RunConfig parse_config(const std::string& yaml_text, const std::vector<std::string>& overrides,
                       const std::string& source, bool check_files) {
  using namespace config;
  RunConfig cfg;
  cfg.source = source;
  KeyOrigins origins(source);
  std::vector<YAML::Node> documents;
  try {
    documents = YAML::LoadAll(yaml_text);
  } catch (const YAML::Exception& e) {
    const std::string where =
        e.mark.is_null() ? source : str_cat(source, ":", e.mark.line + 1, ":", e.mark.column + 1);
    throw ConfigError(str_cat(where, ": YAML syntax error: ", e.msg));
  }
  if (documents.size() > 1)
    fail(source, str_cat("holds ", documents.size(), " YAML documents (separated by ---); a run file is one"));
  const Place place{source, true};
  if (!documents.empty()) apply_mapping(documents[0], "", cfg, origins, place);
  for (const std::string& o : overrides) apply_override(o, cfg, origins);
  validate_run_config(cfg, origins, check_files);
  return cfg;
}

}  // namespace

RunConfig parse_run_config(const std::string& yaml_text, const std::vector<std::string>& overrides,
                           const std::string& source) {
  return parse_config(yaml_text, overrides, source, /*check_files=*/true);
}

RunConfig parse_recorded_run_config(const std::string& yaml_text, const std::string& source) {
  return parse_config(yaml_text, {}, source, /*check_files=*/false);
}

RunConfig load_run_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) throw ConfigError(str_cat("cannot open run file '", path, "': ", std::strerror(errno)));
  std::string text;
  char buf[1 << 14];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f.get())) > 0) text.append(buf, n);
  // A directory opens but does not read (EISDIR).
  if (std::ferror(f.get())) throw ConfigError(str_cat("cannot read run file '", path, "': ", std::strerror(errno)));
  return parse_run_config(text, overrides, path);
}

std::string config_reference_markdown() {
  auto cell = [](const std::string& s) {
    std::string out;
    for (char c : s) out += c == '|' ? std::string("\\|") : std::string(1, c);
    return out;
  };
  const RunConfig defaults;
  std::string out = "| key | type | default | meaning |\n|---|---|---|---|\n";
  for (const config::KeySpec& k : config::run_config_keys())
    out += str_cat("| `", k.name, "` | ", cell(k.type_text()), " | `", cell(k.format(k.read(defaults))), "` | ",
                   cell(k.meaning), " |\n");
  return out;
}

std::string config_to_yaml(const RunConfig& cfg) {
  std::string out = "# lintrain run file with every default filled in";
  out += cfg.source.empty() ? "\n" : str_cat(" (from ", cfg.source, ")\n");
  std::vector<std::string> open;  // the sections whose headers are written, outermost first
  for (const config::KeySpec& k : config::run_config_keys()) {
    std::vector<std::string> path;
    for (std::string s = k.section(); !s.empty(); s = config::parent_of(s)) path.insert(path.begin(), s);
    size_t common = 0;
    while (common < open.size() && common < path.size() && open[common] == path[common]) ++common;
    open.resize(common);
    for (size_t d = common; d < path.size(); ++d) {
      out += str_cat(std::string(2 * d, ' '), config::last_part(path[d]), ":\n");
      open.push_back(path[d]);
    }
    out += str_cat(std::string(2 * path.size(), ' '), k.leaf(), ": ", k.format(k.read(cfg)), "\n");
  }
  return out;
}

std::vector<ConfigChange> config_changes(const std::string& before_yaml, const std::string& after_yaml) {
  auto load = [](const std::string& text, const char* which) {
    try {
      return YAML::Load(text);
    } catch (const YAML::Exception& e) {
      throw ConfigError(str_cat("the ", which, " run file is not YAML: ", e.msg));
    }
  };
  const YAML::Node before = load(before_yaml, "first"), after = load(after_yaml, "second");
  // The value of a dotted key as normalised YAML text (both sides dumped the
  // same way, so formatting differences do not count).
  auto text_of = [](const YAML::Node& root, const std::string& key) -> std::string {
    YAML::Node node = YAML::Clone(root);
    size_t start = 0;
    while (true) {
      const size_t dot = key.find('.', start);
      const std::string part = key.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
      if (!node.IsMap() || !node[part]) return "(absent)";
      node = node[part];
      if (dot == std::string::npos) break;
      start = dot + 1;
    }
    YAML::Emitter out;
    out << YAML::Flow << node;
    return out.c_str();
  };
  std::vector<ConfigChange> changes;
  for (const config::KeySpec& k : config::run_config_keys()) {
    std::string b = text_of(before, k.name), a = text_of(after, k.name);
    if (a != b) changes.push_back({k.name, std::move(b), std::move(a)});
  }
  return changes;
}

}  // namespace lintrain
