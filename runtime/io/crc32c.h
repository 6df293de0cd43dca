// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of
// TFRecord framing (TensorBoard event files), and TFRecord's masked form.
// A table-driven byte loop: event records are tens of bytes, so speed does
// not matter here.
#pragma once

#include <cstddef>
#include <cstdint>

namespace lintrain {

// The CRC-32C of `n` bytes; crc32c("123456789") == 0xE3069283.
uint32_t crc32c(const void* data, size_t n);

// TFRecord's mask, so that a CRC of data holding CRCs stays strong:
// ((crc >> 15) | (crc << 17)) + 0xa282ead8.
inline uint32_t crc32c_mask(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

}  // namespace lintrain
