// Checksums of checkpoint files: XXH3-64 from the xxHash library (Debian's
// libxxhash), streamed so a file is hashed while it is written or received,
// never read twice for it. Written in manifests as 16 lowercase hex digits,
// the form `xxhsum -H3` and Python's xxhash.xxh3_64_hexdigest print.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace lintrain {

class Xxh3 {
 public:
  Xxh3();
  ~Xxh3();
  Xxh3(const Xxh3&) = delete;
  Xxh3& operator=(const Xxh3&) = delete;

  void update(const void* data, size_t nbytes);
  uint64_t digest() const;  // of everything so far; update() may continue after it
  uint64_t bytes() const { return bytes_; }

 private:
  void* state_;  // XXH3_state_t
  uint64_t bytes_ = 0;
};

uint64_t xxh3_of(const void* data, size_t nbytes);
std::string xxh3_hex(uint64_t h);
// Parses 16 hex digits; false when `text` is anything else.
bool parse_xxh3_hex(const std::string& text, uint64_t* out);

}  // namespace lintrain
