// CRC32C (Castagnoli, reflected polynomial 0x82F63B78) with the usual pre- and
// post-inversion, as iSCSI, ext4 and the checkpoint and shard formats use it:
// Crc32c("123456789") == 0xE3069283. Chain calls by passing the previous
// result as `crc`: Crc32c(b, Crc32c(a)) == Crc32c(a followed by b).
// Portable slice-by-8 (no SSE4.2 instruction), ~1-2 GB/s.
#pragma once

#include <cstdint>
#include <span>

namespace dtrain {

uint32_t Crc32c(std::span<const uint8_t> bytes, uint32_t crc = 0);

}  // namespace dtrain
