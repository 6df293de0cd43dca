// The run file's one table of keys (runtime/config/schema.cpp) and the value
// type it speaks. Each row names a key (`section.key`, nested with dots), its
// type and allowed values, a one-line meaning, and how to read and write the
// RunConfig member it stands for. Parsing, --set overrides, the README table
// and config_to_yaml all walk this table; nothing else lists keys.
//
// Defaults are written once, as the member initialisers in config.h: a key's
// default is whatever a default-constructed RunConfig holds, read through the
// row's accessor (so the documentation cannot drift from the code).
//
// Internal to runtime/config; the rest of lintrain uses config.h.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <variant>
#include <vector>

#include "runtime/config/config.h"

namespace lintrain::config {

// A key's value between YAML and the struct member: int64 for int and
// tristate keys, uint64 for the seed, double, bool, string (string, enum and
// decay keys), a list of doubles, a list of strings and the optim.groups rules.
using Value = std::variant<int64_t, uint64_t, double, bool, std::string, std::vector<double>,
                           std::vector<std::string>, std::vector<ParamGroupRule>>;

enum class KeyType {
  kInt,          // a 32-bit integer
  kUInt64,       // a 64-bit unsigned integer (the seed)
  kFloat,        // a finite number
  kBool,         // true | false
  kString,       // any scalar, taken as text
  kEnum,         // one of `choices`
  kTriState,     // -1 (the variant's default), 0/false, 1/true
  kFloatList,    // exactly `list_len` numbers, each in `range`
  kWordOrFloat,  // one of `choices`, or a number in `range` (model.linear_attention.decay)
  kStringList,   // a list of strings (glob patterns)
  kGroupRules,   // optim.groups: a list of {match, ndim, optimizer, lr_scale, weight_decay}
};

// The closed/open interval a number must lie in; unbounded by default.
struct NumberRange {
  double lo = -std::numeric_limits<double>::infinity();
  double hi = std::numeric_limits<double>::infinity();
  bool lo_open = false, hi_open = false;

  bool bounded() const;
  bool contains(double x) const;
  // ">= 1", "> 0", "in [0, 1)", or "" when unbounded.
  std::string describe() const;
};

// Checks a string key's value; returns "" when fine, else what is wrong and
// how to fix it (one clause, no key name: the caller prefixes that).
using StringCheck = std::string (*)(const std::string& value);

struct KeySpec {
  std::string name;  // "model.linear_attention.variant"
  KeyType type;
  Value (*read)(const RunConfig&);
  void (*write)(RunConfig&, const Value&);
  NumberRange range;                 // numbers, list elements, the number form of kWordOrFloat
  std::vector<std::string> choices;  // kEnum, kWordOrFloat
  size_t list_len = 0;               // kFloatList
  StringCheck check = nullptr;       // kString
  std::string meaning;

  // The key's last component ("variant") and its section ("model.linear_attention").
  std::string leaf() const;
  std::string section() const;
  // The type column of the README table, e.g. "int, >= 1" or "enum: fp32, bf16".
  std::string type_text() const;
  // `value` as the YAML text config_to_yaml writes and the table's default shows.
  std::string format(const Value& value) const;
};

// Every key, in the order the README table and config_to_yaml use.
const std::vector<KeySpec>& run_config_keys();
// The key named `name`, or nullptr.
const KeySpec* find_key(const std::string& name);

// Shortest decimal text that reads back as exactly `x`, always with a '.' or
// an exponent so YAML (1.1 and 1.2) reads it as a float: 0.001, 1.0e-5, 10000.0.
std::string format_float(double x);
// `s` as a YAML scalar: plain when it cannot be misread, else double-quoted.
std::string yaml_quote(const std::string& s);

}  // namespace lintrain::config
