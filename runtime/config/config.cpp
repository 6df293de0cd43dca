// Loading a run file: read the YAML, walk it against the key table, apply the
// --set overrides in order, then run the cross-field checks once. Also the two
// ways out of a config: the README's Markdown table and the resolved YAML.
#include "runtime/config/config.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <sstream>

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/parser.h>

#include "runtime/config/parse.h"
#include "runtime/error.h"
#include "runtime/io/input_file.h"

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
void KeyOrigins::set(const std::string& key, const std::string& where, bool by_override) {
  set_[key] = {++count_, where, by_override};
}

std::string KeyOrigins::where(std::initializer_list<const char*> keys) const {
  int latest = 0;
  std::string out = source_;
  for (const char* k : keys) {
    const auto it = set_.find(k);
    if (it != set_.end() && it->second.order > latest) {
      latest = it->second.order;
      out = it->second.where;
    }
  }
  return out;
}

bool KeyOrigins::overridden_after(const std::string& key, const std::string& other) const {
  const auto k = set_.find(key), o = set_.find(other);
  return k != set_.end() && k->second.by_override && (o == set_.end() || k->second.order > o->second.order);
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
    origins.set(name, where, !place.is_file);
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
  // check_keys has made every key a plain name given once.
  for (const auto& entry : node)
    apply_entry(entry.first, entry.second, join(section, entry.first.Scalar()), cfg, origins, place);
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
      fail(place.source, str_cat("the value is not valid YAML: ", yaml_error_text(e)));
    }
    check_keys(value, name, place, raw.size());
  }
  if (key) {
    key->write(cfg, parse_value(*key, value, place.source, place));
    origins.set(name, place.source, true);
  } else {
    apply_mapping(value, name, cfg, origins, place);  // --set 'model.linear_attention={variant: basic}'
  }
}

}  // namespace
}  // namespace config

// ---- public API ---------------------------------------------------------------------
namespace {

// How many documents the text holds (counting stops at 2) and whether the
// first one's root is an empty value. Not YAML::LoadAll: yaml-cpp 0.7's loop
// over documents never ends on some inputs (a lone ','), each pass yielding an
// empty document without consuming anything; two passes are enough here.
struct DocumentShape {
  int documents = 0;
  bool empty_root = false;
};

class ShapeHandler : public YAML::EventHandler {
 public:
  bool root_null = false;
  void OnDocumentStart(const YAML::Mark&) override { first_ = true; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override { node(true); }
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override { node(false); }
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override { node(false); }
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
    node(false);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
    node(false);
  }
  void OnMapEnd() override {}

 private:
  void node(bool null) {
    if (first_) root_null = null;
    first_ = false;
  }
  bool first_ = true;
};

DocumentShape document_shape(const std::string& text) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  DocumentShape shape;
  ShapeHandler first, rest;
  if (!parser.HandleNextDocument(first)) return shape;
  shape.documents = 1;
  shape.empty_root = first.root_null;
  if (parser.HandleNextDocument(rest)) shape.documents = 2;
  return shape;
}

// Whether the text holds anything but blank lines, comments and document markers.
bool has_content(const std::string& text) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    const size_t b = line.find_first_not_of(" \t\r");
    if (b == std::string::npos || line[b] == '#') continue;
    const std::string t = line.substr(b, line.find_last_not_of(" \t\r") - b + 1);
    if (t != "---" && t != "..." && t != "~" && t != "null") return true;
  }
  return false;
}

RunConfig parse_config(const std::string& yaml_text, const std::vector<std::string>& overrides,
                       const std::string& source, bool check_files) {
  using namespace config;
  RunConfig cfg;
  cfg.source = source;
  KeyOrigins origins(source);
  YAML::Node document;
  check_yaml_text(yaml_text, source);
  try {
    const DocumentShape shape = document_shape(yaml_text);
    if (shape.documents >= 1 && shape.empty_root && has_content(yaml_text))
      fail(source, "YAML reads this file as an empty value, not a mapping of sections (a stray ',' or '-'?); a run "
                   "file looks like `model: {hidden_size: 256}`");
    if (shape.documents > 1)
      fail(source, "holds more than one YAML document (separated by ---); a run file is one");
    document = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    const std::string where =
        e.mark.is_null() ? source : str_cat(source, ":", e.mark.line + 1, ":", e.mark.column + 1);
    throw ConfigError(str_cat(where, ": YAML syntax error: ", yaml_error_text(e)));
  }
  const Place place{source, true, &yaml_text};
  check_keys(document, "", place, yaml_text.size());
  apply_mapping(document, "", cfg, origins, place);
  for (const std::string& o : overrides) apply_override(o, cfg, origins);
  cfg.warnings = validate_run_config(cfg, origins, check_files);
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
  std::string text;
  try {
    text = read_input_file(path, "run file", size_t{16} << 20);
  } catch (const IoError& e) {
    throw ConfigError(e.what());
  }
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
      throw ConfigError(str_cat("the ", which, " run file is not YAML: ", config::yaml_error_text(e)));
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
