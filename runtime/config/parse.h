// Pieces of the run-file parser shared by its files: typed values from YAML
// nodes (values.cpp), key suggestions, where each key got its value, and the
// cross-field checks (validate.cpp). Internal to runtime/config.
//
// Every message is one line "<where>: <what>", where <where> is "run.yaml:12"
// for a file, "--set train.steps=0" for an override, or the source alone for a
// rule broken by defaults.
#pragma once

#include <initializer_list>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "runtime/config/schema.h"

namespace lintrain::config {

// Where the text being parsed came from: a file (messages name file:line) or
// one --set override (messages name the override).
struct Place {
  std::string source;  // "run.yaml" or "--set model.hidden_size=abc"
  bool is_file = true;
  // The file's text, for checks that need the source itself (a quoted value
  // that runs past its line); null for overrides.
  const std::string* text = nullptr;

  // "run.yaml:12" for a node of a file, the override text otherwise.
  std::string at(const YAML::Node& node) const;
};

[[noreturn]] void fail(const std::string& where, const std::string& what);

// ---- the YAML document (document.cpp) ----
// Refuses text YAML cannot mean: a NUL or a control character other than tab,
// CR and LF ("<source>:<line>:<column>: ...").
void check_yaml_text(const std::string& text, const std::string& source);
// What an exception of yaml-cpp says, in words where its own text says
// little (too deep nesting is "bad file" there).
std::string yaml_error_text(const YAML::Exception& e);
// Every mapping key at every depth of `root` (whose full name is `root_name`,
// "" for a run file) is a plain, non-empty name, and each full name
// (`model.hidden_size`, `optim.groups[0].lr_scale`) is given once, however it
// is spelled: nested, dotted, or both. The message names both lines.
// `text_size` (the bytes parsed) bounds the values walked, so aliases cannot
// make it take exponential time.
void check_keys(const YAML::Node& root, const std::string& root_name, const Place& place, size_t text_size);

// Reads `node` as a value of `key`'s type and checks it against the key's
// range, choices or check. `where` prefixes errors about the value as a whole;
// list elements name their own line through `place`.
Value parse_value(const KeySpec& key, const YAML::Node& node, const std::string& where, const Place& place);

// The candidate nearest to `word` by edit distance (adjacent transpositions
// count as one edit), or "" when none is close enough to be a likely typo.
std::string nearest(const std::string& word, const std::vector<std::string>& candidates);

// Whether `name` is a section ("model", "precision.fp8"); "" is the top level.
bool is_section(const std::string& name);
// The keys and subsections directly inside `section`, in table order (short names).
std::vector<std::string> section_children(const std::string& section);
// The one-line message for an unknown `name` ("model.hiden_size"): a likely
// intended key when there is one, otherwise the valid names at that level.
std::string unknown_key_message(const std::string& name, bool looks_like_section);

// Where each key last got its value, so a rule broken by two keys points at
// the one the user set most recently.
class KeyOrigins {
 public:
  explicit KeyOrigins(std::string source) : source_(std::move(source)) {}
  void set(const std::string& key, const std::string& where, bool by_override);
  // The place of whichever of `keys` was set last; the source when none was set.
  std::string where(std::initializer_list<const char*> keys) const;
  // Whether the run file or an override gave `key` (rather than its default).
  bool given(const std::string& key) const { return set_.count(key) > 0; }
  // Whether `key` last got its value from a --set that came after `other`
  // got its own (from the file, or an earlier --set).
  bool overridden_after(const std::string& key, const std::string& other) const;

 private:
  struct Origin {
    int order;
    std::string where;
    bool by_override;
  };
  std::string source_;
  std::unordered_map<std::string, Origin> set_;
  int count_ = 0;
};

// The rules that involve more than one key, or the file system (unless
// check_files is false: a recorded config, whose files may be gone and which
// lists every key); run once after the file and all overrides are
// applied. Throws ConfigError. Returns the warnings ("<where>: <key> = <value>
// is set but ...: it has no effect") for keys given in sections the run does
// not use.
std::vector<std::string> validate_run_config(const RunConfig& cfg, const KeyOrigins& origins, bool check_files = true);

}  // namespace lintrain::config
