#include "runtime/data/text_data.h"

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <vector>

#include "runtime/data/window_loader.h"
#include "runtime/error.h"
#include "runtime/io/input_file.h"
#include "runtime/io/mapped_file.h"

namespace lintrain {

namespace fs = std::filesystem;

namespace {

constexpr uint64_t kTextKindId = 0;

void append_file(const std::string& path, std::vector<uint8_t>& out) {
  const std::string text = read_input_file(path, "data file (under data.path)");
  out.insert(out.end(), text.begin(), text.end());
}

// Concatenation of the directory's regular files, '\n' between them. Only
// the files directly in it are read; anything else not hidden (a
// subdirectory, a FIFO, a dangling link) is refused by name rather than
// skipped, so no text the user pointed at is left out without a word (and
// no link loop is ever walked).
std::shared_ptr<std::vector<uint8_t>> read_directory(const std::string& dir) {
  std::vector<std::string> files, others;
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.empty() || name[0] == '.') continue;
    std::error_code st_ec;
    const fs::file_status st = e.status(st_ec);
    if (fs::is_regular_file(st)) {
      files.push_back(e.path().string());
      continue;
    }
    const char* what = fs::is_directory(st) ? "a directory" : !fs::exists(st) ? "a dangling link" : "not a regular file";
    others.push_back(str_cat("'", name, "' (", what, ")"));
  }
  if (ec) throw IoError(str_cat("[data] cannot list data.path '", dir, "': ", ec.message()));
  if (!others.empty()) {
    std::sort(others.begin(), others.end());
    std::string named = others[0];
    for (size_t i = 1; i < std::min<size_t>(others.size(), 3); ++i) named += ", " + others[i];
    if (others.size() > 3) named += str_cat(" and ", others.size() - 3, " more");
    throw IoError(str_cat("[data] data.path '", dir, "' holds ", named, ", which lintrain would not read: it reads "
                          "only the regular files directly in data.path; move their files up, point data.path at a "
                          "subdirectory, or rename an entry to start with '.' to leave it out"));
  }
  std::sort(files.begin(), files.end());
  auto bytes = std::make_shared<std::vector<uint8_t>>();
  for (size_t i = 0; i < files.size(); ++i) {
    if (i > 0) bytes->push_back('\n');
    append_file(files[i], *bytes);
  }
  return bytes;
}

}  // namespace

std::unique_ptr<DataLoader> make_text_loader(const DataConfig& cfg, Split split, int vocab_size, int B, int T,
                                             uint64_t seed, int dp_rank, int dp_size) {
  const std::string& path = cfg.path;
  if (path.empty()) throw ConfigError("[data] data.path is empty; data.kind = text needs a text file or directory");
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) throw IoError(input_error_text(path, "data.path", ec ? ec.value() : ENOENT));

  std::shared_ptr<const void> owner;
  TokenSpan tokens;
  if (fs::is_directory(st)) {
    auto bytes = read_directory(path);
    tokens = TokenSpan{bytes->data(), bytes->size(), 1};
    owner = std::move(bytes);
  } else {
    auto file = std::make_shared<MappedFile>(MappedFile::open(path, false, "data.path"));
    tokens = TokenSpan{file->data(), file->size(), 1};
    owner = std::move(file);
  }
  if (tokens.count == 0) {
    throw IoError(str_cat("[data] data.path '", path, "' is empty (0 bytes of text",
                          fs::is_directory(st) ? " in its files" : "", ")"));
  }
  check_token_ids(tokens, vocab_size, path);
  return std::make_unique<WindowLoader>("text", kTextKindId, path, std::move(owner), tokens, cfg.valid_fraction, split,
                                        B, T, seed, dp_rank, dp_size);
}

}  // namespace lintrain
