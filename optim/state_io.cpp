#include "optim/state_io.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>

#include "runtime/error.h"
#include "runtime/io/safetensors.h"

namespace lintrain {
namespace {
constexpr const char* kFormat = "lintrain-optimizer-state/1";

std::string shape_text(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += str_cat(i ? ", " : "", s[i]);
  return out + "]";
}
}  // namespace

void save_optimizer_state(Optimizer& opt, const std::string& path) {
  std::vector<SafeTensor> tensors;
  for (const StateTensor& t : opt.state_tensors()) {
    SafeTensor st;
    st.name = t.name;
    st.dtype = DType::F32;
    st.shape = t.shape;
    st.data = t.data;
    tensors.push_back(std::move(st));
  }
  std::map<std::string, std::string> meta = {{"format", kFormat}, {"optimizer", opt.name()}};
  for (const StateWord& w : opt.state_words()) meta["word:" + w.name] = std::to_string(*w.value);
  save_safetensors(path, tensors, meta);
}

void load_optimizer_state(Optimizer& opt, const std::string& path) {
  const SafeTensorFile file = load_safetensors(path);
  auto mismatch = [&](const std::string& what) {
    return IoError(str_cat(path, ": ", what, "; the optimizer state was written by a run with other optim "
                           "settings or another model: resume with the same optim.* and model.* keys"));
  };
  const auto& meta = file.metadata();
  const auto fmt = meta.find("format");
  if (fmt == meta.end() || fmt->second != kFormat)
    throw IoError(str_cat(path, ": not a lintrain optimizer-state file (metadata format is not '", kFormat, "')"));
  const auto name = meta.find("optimizer");
  if (name == meta.end() || name->second != opt.name())
    throw mismatch(str_cat("it holds optimizer '", name == meta.end() ? "?" : name->second, "', this run uses '",
                           opt.name(), "'"));

  // Check everything before copying anything.
  const std::vector<StateTensor> tensors = opt.state_tensors();
  const std::vector<StateWord> words = opt.state_words();
  for (const StateTensor& t : tensors) {
    if (!file.contains(t.name)) throw mismatch(str_cat("state tensor '", t.name, "' is missing"));
    const SafeTensor& s = file.get(t.name);
    if (s.dtype != DType::F32 || s.shape != t.shape)
      throw mismatch(str_cat("state tensor '", t.name, "' has shape ", shape_text(s.shape), " ",
                             safetensors_dtype_name(s.dtype), ", expected ", shape_text(t.shape), " F32"));
  }
  if (file.tensors().size() != tensors.size())
    throw mismatch(str_cat("it holds ", file.tensors().size(), " state tensors, this optimizer has ", tensors.size()));
  std::vector<uint64_t> values;
  size_t word_keys = 0;
  for (const auto& kv : meta) word_keys += kv.first.rfind("word:", 0) == 0 ? 1 : 0;
  for (const StateWord& w : words) {
    const auto it = meta.find("word:" + w.name);
    if (it == meta.end()) throw mismatch(str_cat("state word '", w.name, "' is missing"));
    const std::string& text = it->second;
    if (text.empty() || text.size() > 20 || text.find_first_not_of("0123456789") != std::string::npos)
      throw IoError(str_cat(path, ": state word '", w.name, "' is '", text, "', not an unsigned integer; the file is damaged"));
    errno = 0;
    const unsigned long long v = std::strtoull(text.c_str(), nullptr, 10);
    if (errno == ERANGE)
      throw IoError(str_cat(path, ": state word '", w.name, "' is '", text, "', above 2^64 - 1; the file is damaged"));
    values.push_back(v);
  }
  if (word_keys != words.size())
    throw mismatch(str_cat("it holds ", word_keys, " state words, this optimizer has ", words.size()));

  for (const StateTensor& t : tensors)
    std::memcpy(t.data, file.get(t.name).data, static_cast<size_t>(t.numel) * sizeof(float));
  for (size_t i = 0; i < words.size(); ++i) *words[i].value = values[i];
}

}  // namespace lintrain
