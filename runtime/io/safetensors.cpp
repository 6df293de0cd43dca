#include "runtime/io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <set>

#include "runtime/error.h"
#include "runtime/io/atomic_file.h"
#include "runtime/io/json.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors data is little-endian; lintrain writes host memory as is");

namespace lintrain {

namespace {

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the reference reader's limit
constexpr const char* kMetadataKey = "__metadata__";
// The types lintrain stores and reads back (f64 is only a collective's type).
constexpr DType kAllDTypes[] = {DType::F32,    DType::BF16, DType::F8E4M3, DType::F8E5M2,
                                DType::I32,    DType::U16,  DType::U32,
                                DType::I64,    DType::U64};

bool dtype_from_safetensors(const std::string& s, DType* out) {
  for (DType t : kAllDTypes) {
    if (s == safetensors_dtype_name(t)) {
      *out = t;
      return true;
    }
  }
  return false;
}

std::string supported_dtypes() {
  std::string s;
  for (DType t : kAllDTypes) s += str_cat(s.empty() ? "" : ", ", safetensors_dtype_name(t));
  return s;
}

}  // namespace

const char* safetensors_dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::BF16: return "BF16";
    case DType::F8E4M3: return "F8_E4M3";
    case DType::F8E5M2: return "F8_E5M2";
    case DType::I32: return "I32";
    case DType::U16: return "U16";
    case DType::U32: return "U32";
    case DType::I64: return "I64";
    case DType::U64: return "U64";
    case DType::F64: return "F64";
  }
  return "?";
}

SafeTensorsLayout safetensors_layout(const std::string& path, const std::vector<SafeTensor>& tensors,
                                     const std::map<std::string, std::string>& metadata) {
  SafeTensorsLayout layout;
  std::set<std::string> names;
  for (const SafeTensor& t : tensors) {
    LT_CHECK(!t.name.empty(), "[safetensors] ", path, ": a tensor has an empty name");
    LT_CHECK(t.name != kMetadataKey, "[safetensors] ", path, ": '", kMetadataKey, "' is reserved, not a tensor name");
    LT_CHECK(names.insert(t.name).second, "[safetensors] ", path, ": tensor name '", t.name, "' appears twice");
    for (int64_t d : t.shape) {
      LT_CHECK(d >= 0, "[safetensors] ", path, ": tensor '", t.name, "' has shape ", shape_str(t.shape));
    }
    LT_CHECK(t.data != nullptr || t.nbytes() == 0, "[safetensors] ", path, ": tensor '", t.name,
             "' has no data");
    layout.order.push_back(&t);
  }
  std::sort(layout.order.begin(), layout.order.end(), [](const SafeTensor* a, const SafeTensor* b) {
    const size_t sa = dtype_size(a->dtype), sb = dtype_size(b->dtype);
    return sa != sb ? sa > sb : a->name < b->name;
  });

  // The members are appended to the object's vector as they are: the names
  // are unique (checked above), and ordered_json's operator[] would search
  // them all for each (quadratic, on the checkpoint's pause of training).
  nlohmann::ordered_json::object_t fields;
  fields.reserve(layout.order.size() + 1);
  if (!metadata.empty()) fields.emplace_back(kMetadataKey, metadata);
  uint64_t offset = 0;
  for (const SafeTensor* t : layout.order) {
    const uint64_t end = offset + t->nbytes();
    fields.emplace_back(t->name, nlohmann::ordered_json{{"dtype", safetensors_dtype_name(t->dtype)},
                                                        {"shape", t->shape},
                                                        {"data_offsets", {offset, end}}});
    offset = end;
  }
  std::string header;
  try {
    header = dump_json(nlohmann::ordered_json(std::move(fields)));
  } catch (const Error& e) {
    throw Error(str_cat("[safetensors] ", path, ": a tensor name or metadata entry cannot be written: ", e.what()));
  }
  // Pad so the data section (after the 8-byte length and the header) starts
  // at a multiple of 8.
  header.append((8 - header.size() % 8) % 8, ' ');

  const uint64_t n = header.size();
  layout.prefix.resize(8);
  for (int i = 0; i < 8; ++i) layout.prefix[static_cast<size_t>(i)] = static_cast<char>(n >> (8 * i));
  layout.prefix += header;
  layout.data_bytes = offset;
  return layout;
}

void save_safetensors(const std::string& path, const std::vector<SafeTensor>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  const SafeTensorsLayout layout = safetensors_layout(path, tensors, metadata);
  AtomicFileWriter out(path);
  out.write(layout.prefix);
  for (const SafeTensor* t : layout.order) out.write(t->data, t->nbytes());
  out.commit();
}

const SafeTensor& SafeTensorFile::get(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) {
    throw IoError(str_cat("[safetensors] ", path(), ": no tensor named '", name, "' (the file has ",
                          tensors_.size(), " tensors)"));
  }
  return tensors_[it->second];
}

SafeTensorFile load_safetensors(const std::string& path, bool populate) {
  SafeTensorFile f;
  f.file_ = MappedFile::open(path, populate);
  f.path_ = path;
  f.parse(f.file_.data(), f.file_.size());
  return f;
}

SafeTensorFile safetensors_from_memory(const std::string& name, std::shared_ptr<const uint8_t> data, size_t size) {
  SafeTensorFile f;
  f.memory_ = std::move(data);
  f.path_ = name;
  f.parse(f.memory_.get(), size);
  return f;
}

SafeTensorFile safetensors_from_bytes(const std::string& name, std::vector<uint8_t> bytes) {
  auto owner = std::make_shared<std::vector<uint8_t>>(std::move(bytes));
  const size_t size = owner->size();
  // Aliasing: the pointer into the vector keeps the vector alive.
  return safetensors_from_memory(name, std::shared_ptr<const uint8_t>(owner, owner->data()), size);
}

void SafeTensorFile::parse(const uint8_t* bytes, uint64_t size) {
  SafeTensorFile& f = *this;
  const std::string& path = path_;
  auto corrupt = [&](const std::string& what) {
    return IoError(str_cat("[safetensors] ", path, ": ", what, " (corrupt or not a safetensors file)"));
  };
  if (size < 8) throw corrupt(str_cat("the file is ", size, " bytes, shorter than the 8-byte header length"));
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(bytes[i]) << (8 * i);
  if (n > kMaxHeaderBytes) throw corrupt(str_cat("header length ", n, " is above the limit of ", kMaxHeaderBytes));
  if (n > size - 8) throw corrupt(str_cat("header length ", n, " runs past the end of the ", size, "-byte file"));
  if (n < 2 || bytes[8] != '{') throw corrupt("the header does not start with '{'");
  const uint8_t* data = bytes + 8 + n;
  const uint64_t data_size = size - 8 - n;

  nlohmann::json header;
  try {
    header = parse_json(std::string_view(reinterpret_cast<const char*>(bytes + 8), n));
  } catch (const Error& e) {
    throw corrupt(str_cat("the header is not valid JSON: ", e.what()));
  }

  struct Span {
    uint64_t begin, end;
    size_t index;
  };
  std::vector<Span> spans;
  for (const auto& [name, info] : header.items()) {
    if (name == kMetadataKey) {
      if (!info.is_object()) throw corrupt("__metadata__ is not an object");
      for (const auto& [k, v] : info.items()) {
        if (!v.is_string()) throw corrupt(str_cat("__metadata__ value of '", k, "' is not a string"));
        f.metadata_[k] = v.get<std::string>();
      }
      continue;
    }
    const std::string where = str_cat("tensor '", name, "'");
    if (!info.is_object()) throw corrupt(where + " is not described by an object");
    const auto dtype = info.find("dtype");
    const auto shape = info.find("shape");
    const auto offsets = info.find("data_offsets");
    if (dtype == info.end() || !dtype->is_string()) throw corrupt(where + " has no string 'dtype'");
    if (shape == info.end() || !shape->is_array()) throw corrupt(where + " has no array 'shape'");
    if (offsets == info.end() || !offsets->is_array() || offsets->size() != 2) {
      throw corrupt(where + " has no 'data_offsets' pair");
    }
    if (info.size() != 3) throw corrupt(where + " has fields other than dtype, shape, data_offsets");

    const std::string& dtype_name = dtype->get_ref<const std::string&>();
    SafeTensor t;
    t.name = name;
    if (!dtype_from_safetensors(dtype_name, &t.dtype)) {
      throw corrupt(str_cat(where, " has dtype '", dtype_name, "', which lintrain does not read (",
                            supported_dtypes(), ")"));
    }
    for (const nlohmann::json& d : *shape) {
      if (!d.is_number_unsigned()) throw corrupt(where + " has a shape entry that is not a non-negative integer");
      const uint64_t dim = d.get<uint64_t>();
      if (dim > static_cast<uint64_t>(INT64_MAX)) throw corrupt(where + " has a dimension above 2^63");
      t.shape.push_back(static_cast<int64_t>(dim));
    }
    // numel with overflow checks: a product above the file size is already
    // wrong. The product of the nonzero dimensions must also fit in int64,
    // even when another dimension is 0 (an empty tensor): whoever reads the
    // shape multiplies its dimensions in some order (shape_numel, strides,
    // rows * cols), and that must not overflow.
    uint64_t numel = 1, nonzero_product = 1;
    for (int64_t d : t.shape) {
      const uint64_t dim = static_cast<uint64_t>(d);
      if (dim == 0) {
        numel = 0;
        continue;
      }
      if (nonzero_product > static_cast<uint64_t>(INT64_MAX) / dim) {
        throw corrupt(str_cat(where, " has shape ", shape_str(t.shape),
                              ", too many elements (the product of its dimensions is above 2^63)"));
      }
      nonzero_product *= dim;
      numel = numel > size / dim ? size + 1 : numel * dim;  // saturate above the file size; caught below
    }
    if (!(*offsets)[0].is_number_unsigned() || !(*offsets)[1].is_number_unsigned())
      throw corrupt(where + " has data_offsets that are not non-negative integers");
    const uint64_t begin = (*offsets)[0].get<uint64_t>(), end = (*offsets)[1].get<uint64_t>();
    if (begin > end) throw corrupt(str_cat(where, " has data_offsets [", begin, ", ", end, "] with begin > end"));
    if (end > data_size) {
      throw corrupt(str_cat(where, " has data_offsets [", begin, ", ", end, "] past the end of the ", data_size,
                            "-byte data section"));
    }
    const uint64_t want = numel > size ? UINT64_MAX : numel * dtype_size(t.dtype);
    if (end - begin != want) {
      throw corrupt(str_cat(where, " has shape ", shape_str(t.shape), " of ", dtype_name, " (",
                            want == UINT64_MAX ? std::string("too many") : std::to_string(want),
                            " bytes) but data_offsets [", begin, ", ", end, "] hold ", end - begin, " bytes"));
    }
    t.data = data + begin;
    spans.push_back({begin, end, f.tensors_.size()});
    f.tensors_.push_back(std::move(t));
  }

  // The tensors must tile the data section exactly: sorted by offset, each
  // begins where the previous ended, the last ends at the end of the file.
  std::sort(spans.begin(), spans.end(),
            [](const Span& a, const Span& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
  uint64_t expected = 0;
  for (const Span& s : spans) {
    const std::string& name = f.tensors_[s.index].name;
    if (s.begin < expected) {
      throw corrupt(str_cat("tensor '", name, "' at data_offsets [", s.begin, ", ", s.end,
                            "] overlaps the previous tensor, which ends at ", expected));
    }
    if (s.begin > expected) {
      throw corrupt(str_cat("tensor '", name, "' starts at ", s.begin, " leaving a hole after byte ", expected));
    }
    expected = s.end;
  }
  if (expected != data_size) {
    throw corrupt(str_cat("the tensors cover ", expected, " bytes but the data section has ", data_size));
  }

  std::vector<SafeTensor> ordered;
  ordered.reserve(spans.size());
  for (const Span& s : spans) ordered.push_back(std::move(f.tensors_[s.index]));
  f.tensors_ = std::move(ordered);
  for (size_t i = 0; i < f.tensors_.size(); ++i) f.index_[f.tensors_[i].name] = i;
}

}  // namespace lintrain
