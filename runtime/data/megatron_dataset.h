// A Megatron-LM indexed dataset: the `<prefix>.bin` / `<prefix>.idx` pair that
// Megatron's tools/preprocess_data.py (and scripts/prepare_data.py here)
// write. Both files are memory-mapped, never copied, and checked in full when
// opened, so a reader of the arrays below cannot step outside them.
//
// .idx layout (all little-endian, packed):
//   char     magic[9]         "MMIDIDX\0\0"
//   uint64   version          1
//   uint8    dtype code       1 uint8, 2 int8, 3 int16, 4 int32, 5 int64,
//                             6 float64, 7 float32, 8 uint16
//   uint64   S                sequences
//   uint64   D1               entries of the document index (documents + 1)
//   int32    lengths[S]       tokens of each sequence
//   int64    pointers[S]      byte offset of each sequence in the .bin
//   int64    doc_index[D1]    first sequence of each document, then S
//   (int8    modes[S])        multimodal indexes only; accepted and ignored
// .bin: the tokens of every sequence, back to back, in the dtype above.
//
// Megatron writes one sequence per document unless it splits sentences; a
// document here is the run of sequences [doc_index[d], doc_index[d+1]), and
// its tokens are contiguous in the .bin (pointers must be the running sum of
// lengths: that is what every Megatron writer produces, and it makes a
// document one token range).
#pragma once

#include <cstdint>
#include <string>

#include "runtime/io/mapped_file.h"

namespace lintrain {

constexpr char kMegatronIndexMagic[9] = {'M', 'M', 'I', 'D', 'I', 'D', 'X', 0, 0};
constexpr uint64_t kMegatronIndexVersion = 1;
constexpr uint64_t kMegatronHeaderBytes = 9 + 8 + 1 + 8 + 8;  // magic, version, dtype, S, D1

// The dtype codes of Megatron's DType enum.
enum class MegatronDType : uint8_t {
  kUInt8 = 1, kInt8 = 2, kInt16 = 3, kInt32 = 4, kInt64 = 5, kFloat64 = 6, kFloat32 = 7, kUInt16 = 8
};
// "uint16", ... ; "code N" for an unknown code.
std::string megatron_dtype_name(uint8_t code);

class MegatronDataset {
 public:
  // Opens and checks `<prefix>.idx` and `<prefix>.bin`. `vocab_size` is the
  // model's: a dtype that cannot hold every id of it (uint8 for 4096 ids,
  // uint16 for 100k) means the file was written for another tokenizer and is
  // refused, and so is any token id outside [0, vocab_size) (a full scan of
  // the .bin, skipped only for unsigned dtypes too narrow to hold an id >=
  // vocab_size). Throws IoError for missing, truncated or inconsistent
  // files, ConfigError for a vocabulary mismatch; each message names the
  // file, what is wrong and the fix. `what` names the prefix in messages
  // ("data.path", "data.blend[1]").
  static MegatronDataset open(const std::string& prefix, int vocab_size, const std::string& what = "data.path");

  const std::string& prefix() const { return prefix_; }
  MegatronDType dtype() const { return dtype_; }
  int token_bytes() const { return width_; }
  uint64_t num_sequences() const { return sequences_; }
  uint64_t num_documents() const { return documents_; }
  uint64_t num_tokens() const { return tokens_; }

  // Token ids of document d: [document_begin(d), document_begin(d + 1)) in the
  // .bin (0 <= d <= num_documents()).
  uint64_t document_begin(uint64_t d) const;
  // Token i of the .bin (i < num_tokens()); checked on open to be in the vocabulary.
  int32_t token(uint64_t i) const;
  // Length of sequence s and its offset in tokens (s < num_sequences()).
  int32_t sequence_length(uint64_t s) const;
  uint64_t sequence_begin(uint64_t s) const;

  // Digest of the whole .idx and 64 pieces of the .bin (see WindowLoader::fingerprint).
  uint64_t digest() const;

 private:
  std::string prefix_;
  MappedFile idx_, bin_;
  MegatronDType dtype_ = MegatronDType::kUInt16;
  int width_ = 2;
  uint64_t sequences_ = 0, documents_ = 0, tokens_ = 0;
  const uint8_t* lengths_ = nullptr;    // int32[S], in idx_
  const uint8_t* pointers_ = nullptr;   // int64[S], in idx_
  const uint8_t* doc_index_ = nullptr;  // int64[D1], in idx_
};

}  // namespace lintrain
