// lintrain reads and writes JSON with nlohmann-json; this is the thin layer
// over it for what lintrain's file formats need (safetensors headers,
// checkpoint manifests and arrival records, Hugging Face config.json,
// metrics.jsonl). Readers get a plain nlohmann::json and writers build a
// nlohmann::ordered_json (members in the order they are added), so the one
// thing added here is strictness on input: hostile bytes reach parse_json
// (a safetensors header from anywhere, a manifest on shared storage, the
// checkpoint service's replies).
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace lintrain {

// The deepest nesting of arrays and objects parse_json accepts.
constexpr int kJsonMaxDepth = 64;

// Parses `text` as exactly one JSON value (RFC 8259), strictly: nothing but
// whitespace before or after it (no byte order mark), valid UTF-8, no
// duplicate object keys (nlohmann alone would keep the last), no
// NaN/Infinity/comments/trailing commas, no number beyond the double range,
// at most kJsonMaxDepth nested arrays and objects (so hostile input cannot
// exhaust memory or the stack on deep nesting). Throws lintrain::Error
// "[json] <what is wrong> at byte <offset>", the offset being how many bytes
// had been read when the problem showed.
//
// Numbers keep nlohmann's kinds, which is what readers test:
// is_number_unsigned() holds exactly for digits only (no sign, fraction or
// exponent) below 2^64 (a count, size or offset); any other number is an
// integer (negative) or a double. Object members come back in key order
// (nlohmann::json's std::map), not document order.
nlohmann::json parse_json(std::string_view text);

// `value` as JSON text, compact when indent < 0 (no spaces) or pretty-printed
// with `indent` spaces. Doubles are the shortest text that reads back as the
// same double and always have a '.' or an exponent ("10000.0", "1e-05"), so
// readers keep them floats. Throws lintrain::Error (not nlohmann's
// type_error) for what no reader could read back: a NaN or infinity (which
// nlohmann would write as null) or a string that is not valid UTF-8.
std::string dump_json(const nlohmann::ordered_json& value, int indent = -1);

}  // namespace lintrain
