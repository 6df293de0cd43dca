#include "runtime/io/json.h"

#include <cmath>
#include <cstdio>
#include <iterator>
#include <vector>

#include "runtime/error.h"

namespace lintrain {

namespace {

// A pointer into the text that counts the bytes nlohmann's lexer has taken
// (it takes each once, in order), so that every error can say where it is,
// including those nlohmann leaves to us (duplicate keys, nesting).
class CountingIterator {
 public:
  using iterator_category = std::input_iterator_tag;
  using value_type = char;
  using difference_type = std::ptrdiff_t;
  using pointer = const char*;
  using reference = const char&;

  CountingIterator(const char* p, size_t* taken) : p_(p), taken_(taken) {}
  reference operator*() const { return *p_; }
  CountingIterator& operator++() {
    ++p_;
    ++*taken_;
    return *this;
  }
  bool operator==(const CountingIterator& other) const { return p_ == other.p_; }
  bool operator!=(const CountingIterator& other) const { return p_ != other.p_; }

 private:
  const char* p_;
  size_t* taken_;
};

// `s` fit for an error message: bytes outside printable ASCII as \xNN (what
// is quoted may be invalid UTF-8 or binary), and not all of it when long (an
// unterminated string would quote the rest of the input).
std::string printable(std::string_view s) {
  constexpr size_t kMaxShown = 200;
  std::string out;
  for (size_t i = 0; i < s.size() && i < kMaxShown; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    }
  }
  if (s.size() > kMaxShown) out += "...";
  return out;
}

// nlohmann's reason ("syntax error while parsing value - invalid literal;
// last read: 'tru'") without its "[json.exception.parse_error.101] parse
// error at line 1, column 4: " prefix: the byte offset is said instead.
std::string reason_of(const nlohmann::json::exception& e) {
  std::string_view s = e.what();
  const size_t id_end = s.find("] ");
  if (id_end != std::string_view::npos) s.remove_prefix(id_end + 2);
  const size_t where_end = s.find(": ");
  if (s.substr(0, 11) == "parse error" && where_end != std::string_view::npos) s.remove_prefix(where_end + 2);
  return printable(s);
}

// Whether `v` holds a NaN or infinity; if so `where` gets its path ("/a/0/b").
bool find_non_finite(const nlohmann::ordered_json& v, std::string* where) {
  if (v.is_number_float()) return !std::isfinite(v.get<double>());
  if (!v.is_structured()) return false;
  for (const auto& member : v.items()) {
    if (find_non_finite(member.value(), where)) {
      *where = "/" + member.key() + *where;
      return true;
    }
  }
  return false;
}

// nlohmann's SAX events built into a value as its own DOM parser does, with
// the checks it leaves out. (Its parser callback could make them too, but
// the callback parser rescans an object's members each time one of them
// closes: quadratic in a header of many tensors.)
class StrictBuilder : public nlohmann::json::json_sax_t {
 public:
  using Json = nlohmann::json;
  StrictBuilder(Json* root, const size_t* taken) : root_(root), taken_(taken) {}

  bool null() override { return add(nullptr); }
  bool boolean(bool v) override { return add(v); }
  bool number_integer(Json::number_integer_t v) override { return add(v); }
  bool number_unsigned(Json::number_unsigned_t v) override { return add(v); }
  bool number_float(Json::number_float_t v, const Json::string_t&) override { return add(v); }
  bool string(Json::string_t& v) override { return add(std::move(v)); }
  bool binary(Json::binary_t&) override { return false; }  // the JSON lexer has no binary values
  bool start_object(size_t) override { return open(Json::object()); }
  bool start_array(size_t) override { return open(Json::array()); }
  bool end_object() override { return close(); }
  bool end_array() override { return close(); }
  bool key(Json::string_t& k) override {
    auto [member, added] = open_.back()->emplace(k, nullptr);
    if (!added) throw fail(str_cat("duplicate key ", printable(Json(k).dump())));
    member_ = &member.value();
    return true;
  }
  bool parse_error(size_t, const std::string&, const nlohmann::json::exception& e) override {
    throw fail(reason_of(e));
  }

 private:
  Error fail(const std::string& what) const { return Error(str_cat("[json] ", what, " at byte ", *taken_)); }
  // Puts `v` where the document has it: the root, the next element of the
  // open array, or the member whose key came last.
  Json* place(Json v) {
    if (open_.empty()) return &(*root_ = std::move(v));
    Json& parent = *open_.back();
    if (parent.is_object()) return &(*member_ = std::move(v));
    parent.push_back(std::move(v));
    return &parent.back();
  }
  bool add(Json v) {
    place(std::move(v));
    return true;
  }
  bool open(Json container) {
    if (open_.size() >= kJsonMaxDepth) throw fail(str_cat("nesting deeper than ", kJsonMaxDepth, " levels"));
    // The open containers stay where they are: an array only grows once the
    // element opened in it has closed.
    open_.push_back(place(std::move(container)));
    return true;
  }
  bool close() {
    open_.pop_back();
    return true;
  }

  Json* root_;
  const size_t* taken_;
  std::vector<Json*> open_;  // the arrays and objects being read, innermost last
  Json* member_ = nullptr;   // the open object's member whose value comes next
};

}  // namespace

nlohmann::json parse_json(std::string_view text) {
  size_t taken = 0;
  // nlohmann skips a leading byte order mark; RFC 8259 lets a reader refuse it.
  if (text.substr(0, 3) == "\xEF\xBB\xBF") throw Error("[json] a byte order mark (not JSON) at byte 0");
  nlohmann::json root;
  StrictBuilder builder(&root, &taken);
  nlohmann::json::sax_parse(CountingIterator(text.data(), &taken), CountingIterator(text.data() + text.size(), &taken),
                            &builder);
  return root;
}

std::string dump_json(const nlohmann::ordered_json& value, int indent) {
  std::string where;
  if (find_non_finite(value, &where))
    throw Error(str_cat("[json] cannot write the number at ", where.empty() ? "/" : where,
                        ": it is not finite, and JSON has no NaN or infinity"));
  try {
    return value.dump(indent);
  } catch (const nlohmann::json::type_error& e) {
    throw Error(str_cat("[json] cannot write a string that is not valid UTF-8 (", reason_of(e), ")"));
  }
}

}  // namespace lintrain
