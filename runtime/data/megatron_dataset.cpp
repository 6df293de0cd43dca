#include "runtime/data/megatron_dataset.h"

#include <cstring>
#include <vector>

#include "runtime/checkpoint/checksum.h"
#include "runtime/error.h"

namespace lintrain {

namespace {

uint64_t read_le(const uint8_t* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = v << 8 | p[i];
  return v;
}
int64_t read_i64(const uint8_t* p) { return static_cast<int64_t>(read_le(p, 8)); }
int32_t read_i32(const uint8_t* p) { return static_cast<int32_t>(static_cast<uint32_t>(read_le(p, 4))); }

// Bytes per token of a dtype code, 0 for an unknown code.
int dtype_width(uint8_t code) {
  switch (code) {
    case 1: case 2: return 1;
    case 3: case 8: return 2;
    case 4: case 7: return 4;
    case 5: case 6: return 8;
    default: return 0;
  }
}

bool dtype_signed(MegatronDType t) {
  return t == MegatronDType::kInt8 || t == MegatronDType::kInt16 || t == MegatronDType::kInt32 ||
         t == MegatronDType::kInt64;
}

// Ids 0..max_id(t) fit in the dtype (int64 ids beyond int32 are refused by the scan).
uint64_t max_id(MegatronDType t) {
  switch (t) {
    case MegatronDType::kUInt8: return 0xff;
    case MegatronDType::kInt8: return 0x7f;
    case MegatronDType::kInt16: return 0x7fff;
    case MegatronDType::kUInt16: return 0xffff;
    default: return 0x7fffffff;
  }
}

// Id `i` of a .bin of dtype t (an integer dtype) at `data`.
template <MegatronDType T>
int64_t id_at(const uint8_t* data, uint64_t i) {
  if constexpr (T == MegatronDType::kUInt8) return data[i];
  if constexpr (T == MegatronDType::kInt8) return static_cast<int8_t>(data[i]);
  if constexpr (T == MegatronDType::kUInt16) return static_cast<int64_t>(read_le(data + 2 * i, 2));
  if constexpr (T == MegatronDType::kInt16) return static_cast<int16_t>(static_cast<uint16_t>(read_le(data + 2 * i, 2)));
  if constexpr (T == MegatronDType::kInt32) return read_i32(data + 4 * i);
  return read_i64(data + 8 * i);
}

int64_t id_at(MegatronDType t, const uint8_t* data, uint64_t i) {
  switch (t) {
    case MegatronDType::kUInt8: return id_at<MegatronDType::kUInt8>(data, i);
    case MegatronDType::kInt8: return id_at<MegatronDType::kInt8>(data, i);
    case MegatronDType::kUInt16: return id_at<MegatronDType::kUInt16>(data, i);
    case MegatronDType::kInt16: return id_at<MegatronDType::kInt16>(data, i);
    case MegatronDType::kInt32: return id_at<MegatronDType::kInt32>(data, i);
    default: return id_at<MegatronDType::kInt64>(data, i);
  }
}

// First position whose id is outside [0, vocab), or `count`; the largest id in *hi.
template <MegatronDType T>
uint64_t scan_ids(const uint8_t* data, uint64_t count, int64_t vocab, int64_t* hi) {
  uint64_t first_bad = count;
  int64_t top = 0;
  for (uint64_t i = 0; i < count; ++i) {
    const int64_t id = id_at<T>(data, i);
    top = id > top ? id : top;
    if ((id < 0 || id >= vocab) && first_bad == count) first_bad = i;
  }
  *hi = top;
  return first_bad;
}

uint64_t scan_ids(MegatronDType t, const uint8_t* data, uint64_t count, int64_t vocab, int64_t* hi) {
  switch (t) {
    case MegatronDType::kUInt8: return scan_ids<MegatronDType::kUInt8>(data, count, vocab, hi);
    case MegatronDType::kInt8: return scan_ids<MegatronDType::kInt8>(data, count, vocab, hi);
    case MegatronDType::kUInt16: return scan_ids<MegatronDType::kUInt16>(data, count, vocab, hi);
    case MegatronDType::kInt16: return scan_ids<MegatronDType::kInt16>(data, count, vocab, hi);
    case MegatronDType::kInt32: return scan_ids<MegatronDType::kInt32>(data, count, vocab, hi);
    default: return scan_ids<MegatronDType::kInt64>(data, count, vocab, hi);
  }
}

}  // namespace

std::string megatron_dtype_name(uint8_t code) {
  static const char* names[] = {"", "uint8", "int8", "int16", "int32", "int64", "float64", "float32", "uint16"};
  return code >= 1 && code <= 8 ? names[code] : str_cat("code ", int{code});
}

MegatronDataset MegatronDataset::open(const std::string& prefix, int vocab_size, const std::string& what) {
  MegatronDataset ds;
  ds.prefix_ = prefix;
  const std::string idx_path = prefix + ".idx", bin_path = prefix + ".bin";
  const std::string idx_name = str_cat("[data] ", what, " index '", idx_path, "'");
  const std::string bin_name = str_cat("[data] ", what, " data file '", bin_path, "'");
  const std::string not_megatron = "; is it a Megatron indexed dataset (written by Megatron-LM's preprocess_data.py "
                                   "or scripts/prepare_data.py)?";
  try {
    ds.idx_ = MappedFile::open(idx_path, false, str_cat(what, " index"));
    ds.bin_ = MappedFile::open(bin_path, false, str_cat(what, " data file"));
  } catch (const IoError& e) {
    throw IoError(str_cat("[data] ", e.what(), " (data.kind megatron reads the pair <prefix>.bin and <prefix>.idx; ",
                          what, " is the prefix without the extension)"));
  }

  // ---- header ----
  const uint8_t* idx = ds.idx_.data();
  const uint64_t idx_size = ds.idx_.size();
  if (idx_size < kMegatronHeaderBytes)
    throw IoError(str_cat(idx_name, " is ", idx_size, " bytes, shorter than the ", kMegatronHeaderBytes,
                          "-byte header (truncated or not an index)", not_megatron));
  if (std::memcmp(idx, kMegatronIndexMagic, sizeof kMegatronIndexMagic) != 0)
    throw IoError(str_cat(idx_name, " does not start with the magic MMIDIDX\\0\\0", not_megatron,
                          " (Megatron's older 'cached'/'lazy' TNTIDX indexes are not read)"));
  const uint64_t version = read_le(idx + 9, 8);
  if (version != kMegatronIndexVersion)
    throw IoError(str_cat(idx_name, " has format version ", version, "; lintrain reads version ",
                          kMegatronIndexVersion, " (rewrite it with scripts/prepare_data.py)"));
  const uint8_t code = idx[17];
  ds.width_ = dtype_width(code);
  if (ds.width_ == 0)
    throw IoError(str_cat(idx_name, " has dtype code ", int{code}, ", which is none of Megatron's 1..8 (corrupt file)"));
  ds.dtype_ = static_cast<MegatronDType>(code);
  if (ds.dtype_ == MegatronDType::kFloat32 || ds.dtype_ == MegatronDType::kFloat64)
    throw IoError(str_cat(idx_name, " holds ", megatron_dtype_name(code), " values, not token ids; data.kind megatron "
                          "reads token datasets (dtype uint8, int8, int16, uint16, int32 or int64)"));
  const uint64_t S = read_le(idx + 18, 8), D1 = read_le(idx + 26, 8);

  // ---- sizes (before any multiplication can overflow) ----
  const uint64_t body = idx_size - kMegatronHeaderBytes;
  if (S > body / 12 || D1 > body / 8)
    throw IoError(str_cat(idx_name, " says ", S, " sequences and ", D1, " document-index entries, which do not fit in its ",
                          idx_size, " bytes (truncated or corrupt)"));
  const uint64_t want = kMegatronHeaderBytes + 12 * S + 8 * D1;
  if (idx_size != want && idx_size != want + S)
    throw IoError(str_cat(idx_name, " is ", idx_size, " bytes but its header (", S, " sequences, ", D1,
                          " document-index entries) needs ", want, idx_size < want ? " (truncated)" : " (trailing bytes)"));
  ds.lengths_ = idx + kMegatronHeaderBytes;
  ds.pointers_ = ds.lengths_ + 4 * S;
  ds.doc_index_ = ds.pointers_ + 8 * S;
  ds.sequences_ = S;
  if (D1 < 2 || S == 0)
    throw IoError(str_cat(idx_name, " holds no documents (", S, " sequences, ", D1 == 0 ? 0 : D1 - 1,
                          " documents); prepare it from non-empty text"));
  ds.documents_ = D1 - 1;

  // ---- sequences: lengths >= 0, pointers the running sum of lengths ----
  const uint64_t w = static_cast<uint64_t>(ds.width_);
  uint64_t offset = 0;  // bytes
  for (uint64_t s = 0; s < S; ++s) {
    const int32_t len = read_i32(ds.lengths_ + 4 * s);
    const int64_t ptr = read_i64(ds.pointers_ + 8 * s);
    if (len < 0) throw IoError(str_cat(idx_name, ": sequence ", s, " has negative length ", len, " (corrupt file)"));
    if (ptr < 0 || static_cast<uint64_t>(ptr) != offset)
      throw IoError(str_cat(idx_name, ": sequence ", s, " starts at byte ", ptr, " of the .bin but the lengths before it ",
                            "end at byte ", offset, "; the pointers must be the running sum of lengths x ", w,
                            " bytes (corrupt file, or .idx and .bin of different datasets)"));
    offset += static_cast<uint64_t>(len) * w;
  }
  // ---- documents: 0 = doc_index[0] <= doc_index[1] <= ... <= doc_index[D] = S ----
  int64_t prev = 0;
  for (uint64_t d = 0; d < D1; ++d) {
    const int64_t first = read_i64(ds.doc_index_ + 8 * d);
    const bool bad = d == 0 ? first != 0 : first < prev || static_cast<uint64_t>(first) > S;
    if (bad)
      throw IoError(str_cat(idx_name, ": document index entry ", d, " is ", first, d == 0 ? ", expected 0" : "",
                            d > 0 ? str_cat(" after ", prev, "; the entries must rise from 0 to the ", S, " sequences")
                                  : std::string(),
                            " (corrupt file)"));
    prev = first;
  }
  if (static_cast<uint64_t>(prev) != S)
    throw IoError(str_cat(idx_name, ": the last document index entry is ", prev, " but there are ", S,
                          " sequences; it must end at the sequence count (corrupt or truncated file)"));

  // ---- the .bin matches the index ----
  if (ds.bin_.size() != offset)
    throw IoError(str_cat(bin_name, " is ", ds.bin_.size(), " bytes but its index describes ", offset, " (",
                          offset / w, " ", megatron_dtype_name(code), " tokens)",
                          ds.bin_.size() < offset ? ": the .bin is truncated; copy or prepare it again"
                                                  : ": the .bin and .idx are not a pair; prepare them again together"));
  ds.tokens_ = offset / w;
  if (ds.tokens_ == 0) throw IoError(str_cat(bin_name, " holds no tokens (every document is empty)"));

  // ---- the vocabulary ----
  const uint64_t vocab = static_cast<uint64_t>(vocab_size);
  if (vocab > max_id(ds.dtype_) + 1)
    throw ConfigError(str_cat(idx_name, " stores ", megatron_dtype_name(code), " token ids (at most ", max_id(ds.dtype_),
                              ") but model.vocab_size = ", vocab_size, " needs ids up to ", vocab - 1,
                              ": the dataset was written for a smaller vocabulary; set model.vocab_size to the ",
                              "tokenizer's, or prepare the data again with this tokenizer"));
  if (dtype_signed(ds.dtype_) || vocab <= max_id(ds.dtype_)) {
    int64_t hi = 0;
    const uint64_t bad = scan_ids(ds.dtype_, ds.bin_.data(), ds.tokens_, static_cast<int64_t>(vocab), &hi);
    if (bad < ds.tokens_) {
      const int64_t id = id_at(ds.dtype_, ds.bin_.data(), bad);
      throw ConfigError(str_cat(bin_name, ": token id ", id, " at position ", bad, id < 0 ? " is negative" : "",
                                id < 0 ? "" : str_cat(" is >= model.vocab_size = ", vocab_size), " (the largest id is ", hi,
                                "); ", id < 0 ? "the file is corrupt" : str_cat("raise model.vocab_size to at least ", hi + 1,
                                " or use the tokenizer the data was prepared with")));
    }
  }
  return ds;
}

uint64_t MegatronDataset::sequence_begin(uint64_t s) const {
  return static_cast<uint64_t>(read_i64(pointers_ + 8 * s)) / static_cast<uint64_t>(width_);
}

int32_t MegatronDataset::sequence_length(uint64_t s) const { return read_i32(lengths_ + 4 * s); }

uint64_t MegatronDataset::document_begin(uint64_t d) const {
  const uint64_t s = static_cast<uint64_t>(read_i64(doc_index_ + 8 * d));
  return s == sequences_ ? tokens_ : sequence_begin(s);
}

int32_t MegatronDataset::token(uint64_t i) const { return static_cast<int32_t>(id_at(dtype_, bin_.data(), i)); }

uint64_t MegatronDataset::digest() const {
  constexpr uint64_t kPieces = 64, kPiece = 64 * 1024;
  std::vector<uint64_t> digests{xxh3_of(idx_.data(), idx_.size())};
  const uint64_t bytes = bin_.size();
  if (bytes <= kPieces * kPiece) {
    digests.push_back(xxh3_of(bin_.data(), bytes));
  } else {
    for (uint64_t i = 0; i < kPieces; ++i)
      digests.push_back(xxh3_of(bin_.data() + (bytes - kPiece) / (kPieces - 1) * i, kPiece));
  }
  return xxh3_of(digests.data(), digests.size() * sizeof(uint64_t));
}

}  // namespace lintrain
