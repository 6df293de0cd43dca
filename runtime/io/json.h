// A small strict JSON (RFC 8259) reader and the two writer helpers lintrain's
// file formats need (safetensors headers, Hugging Face config.json). Strict
// means: one value and nothing but whitespace after it, valid UTF-8, no
// duplicate object keys, no NaN/Infinity/comments/trailing commas, nesting at
// most 64 deep (so hostile input cannot exhaust the stack).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lintrain {

class JsonValue {
 public:
  enum class Kind { Null, Bool, Number, String, Array, Object };
  using Member = std::pair<std::string, JsonValue>;

  Kind kind() const { return kind_; }
  bool is_null() const { return kind_ == Kind::Null; }
  bool is_bool() const { return kind_ == Kind::Bool; }
  bool is_number() const { return kind_ == Kind::Number; }
  bool is_string() const { return kind_ == Kind::String; }
  bool is_array() const { return kind_ == Kind::Array; }
  bool is_object() const { return kind_ == Kind::Object; }
  static const char* kind_name(Kind k);  // "null", "bool", ... for messages

  // Typed access; each throws lintrain::Error when the kind does not match.
  bool as_bool() const;
  double as_double() const;
  // The number as an exact integer in [0, 2^64): its text must be digits only
  // (no sign, fraction or exponent) and must not overflow.
  uint64_t as_uint64() const;
  const std::string& as_string() const;
  const std::vector<JsonValue>& as_array() const;
  const std::vector<Member>& as_object() const;  // members in document order
  // The member named `key` of an object, or nullptr.
  const JsonValue* find(std::string_view key) const;

 private:
  friend class JsonParser;
  Kind kind_ = Kind::Null;
  bool bool_ = false;
  std::string text_;  // a string's value, or a number's source text
  std::vector<JsonValue> array_;
  std::vector<Member> object_;
};

// Parses `text` as exactly one JSON value. Throws lintrain::Error whose message
// says what is wrong and at which byte offset.
JsonValue parse_json(std::string_view text);

// `s` as a JSON string literal with quotes and escapes.
std::string json_quote(std::string_view s);
// The shortest decimal text that reads back as exactly `v`, always with a '.'
// or exponent so readers keep it a float ("10000.0", "1e-05"). Throws
// lintrain::Error for NaN or infinity, which JSON cannot represent.
std::string json_number(double v);

}  // namespace lintrain
