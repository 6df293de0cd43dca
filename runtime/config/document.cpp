// The YAML of a run file (or of one --set value) before its keys are read:
// the text is text, every mapping key is a plain name given once, and
// yaml-cpp's own terse errors ("bad file") get words.
//
// One rule for repeated keys: a key's full name (`model.hidden_size`,
// `optim.groups[0].lr_scale`) appears once per file or --set value, however
// it is spelled. YAML allows `model: {hidden_size: 64}` and
// `model.hidden_size: 128` side by side, and yaml-cpp keeps both entries of a
// repeated key, so without this one silently wins.
#include <yaml-cpp/depthguard.h>

#include <unordered_map>
#include <vector>

#include "runtime/config/parse.h"
#include "runtime/error.h"

namespace lintrain::config {

void check_yaml_text(const std::string& text, const std::string& source) {
  size_t line = 1, column = 1;
  for (unsigned char c : text) {
    if (c == '\n') {
      ++line;
      column = 1;
      continue;
    }
    // YAML allows tab, CR and LF among the control characters; anything else
    // (a NUL above all) means a binary or UTF-16 file, or a paste gone wrong.
    if ((c < 0x20 && c != '\t' && c != '\r') || c == 0x7f)
      fail(str_cat(source, ":", line, ":", column),
           c == 0 ? "the file holds a NUL byte; a run file is UTF-8 text (is this a binary file, or one saved as "
                    "UTF-16?)"
                  : str_cat("the file holds the control character code ", int(c),
                            ", which YAML does not allow in text; remove it"));
    ++column;
  }
}

std::string yaml_error_text(const YAML::Exception& e) {
  if (dynamic_cast<const YAML::DeepRecursion*>(&e))
    return "lists and mappings nest too deeply for the YAML parser (hundreds of levels); a run file nests a "
           "few (section, key, list of rules): look for a run of '[' or '{' that is never closed";
  return e.msg;
}

namespace {

class KeyChecker {
 public:
  KeyChecker(const Place& place, size_t text_size) : place_(place), budget_(2 * text_size + 10000) {}

  // `name` is the full name of `node` ("" at a run file's top level), `written`
  // the keys that led to it as the user wrote them ("model: hidden_size").
  void walk(const YAML::Node& node, const std::string& name, const std::string& written) {
    // A file's own values number at most its bytes; more are aliases (*a)
    // repeating anchored values, which a run file has no use for in bulk.
    if (budget_-- == 0)
      fail(place_.source, "YAML aliases (*name) repeat more values than a run file holds; write the values out");
    if (!node.IsSequence() && !node.IsMap()) return;
    // An alias inside its own anchor (`a: &x {b: *x}`) makes the tree a cycle;
    // following it would never end. The parser's own depth guard sees only
    // the text, so the walk keeps its own path.
    for (const YAML::Node& above : path_)
      if (above.is(node))
        fail(place_.at(node), str_cat("'", name, "' is an alias (*name) of a mapping or list that contains it, so "
                                      "the value contains itself without end; write the value out"));
    if (path_.size() >= kMaxDepth)
      fail(place_.at(node), str_cat("'", name, "' nests ", kMaxDepth, " mappings or lists deep; a run file nests a "
                                    "few (section, key, list of rules): look for aliases (*name) that stack values"));
    path_.push_back(node);
    if (node.IsSequence()) {
      for (size_t i = 0; i < node.size(); ++i) walk(node[i], str_cat(name, "[", i, "]"), str_cat(written, "[", i, "]"));
      path_.pop_back();
      return;
    }
    for (const auto& entry : node) {
      const YAML::Node& key = entry.first;
      const std::string in = name.empty() ? "at the top level" : str_cat("in '", name, "'");
      if (key.IsMap() || key.IsSequence())
        fail(place_.at(key), str_cat("keys are plain names like hidden_size; got a ", key.IsMap() ? "mapping" : "list",
                                     " as a key ", in));
      if (key.IsNull() || key.Scalar().empty())
        fail(place_.at(key), str_cat("a key ", in, " is empty (~, null or nothing before ':'); keys are plain names "
                                     "like hidden_size"));
      const std::string full = name.empty() ? key.Scalar() : str_cat(name, ".", key.Scalar());
      const std::string spelled = written.empty() ? key.Scalar() : str_cat(written, ": ", key.Scalar());
      const int line = key.Mark().is_null() ? 0 : key.Mark().line + 1;
      const auto [it, first] = seen_.emplace(full, Seen{line, spelled});
      if (!first) fail(place_.at(key), twice(full, it->second, Seen{line, spelled}));
      walk(entry.second, full, spelled);
    }
    path_.pop_back();
  }

 private:
  struct Seen {
    int line;
    std::string spelled;
  };

  std::string twice(const std::string& full, const Seen& a, const Seen& b) const {
    std::string where;
    if (!place_.is_file || a.line == 0 || b.line == 0) where = place_.is_file ? " in this file" : " in this value";
    else if (a.spelled != b.spelled)
      where = str_cat(", on line ", a.line, " as '", a.spelled, "' and on line ", b.line, " as '", b.spelled, "'");
    else if (a.line == b.line) where = str_cat(" on line ", a.line);
    else where = str_cat(", on lines ", a.line, " and ", b.line);
    return str_cat("'", full, "' is given twice", where, "; keep one");
  }

  static constexpr size_t kMaxDepth = 64;

  const Place& place_;
  size_t budget_;
  std::vector<YAML::Node> path_;
  std::unordered_map<std::string, Seen> seen_;
};

}  // namespace

void check_keys(const YAML::Node& root, const std::string& root_name, const Place& place, size_t text_size) {
  KeyChecker(place, text_size).walk(root, root_name, root_name);
}

}  // namespace lintrain::config
