// IDX reader (the Fashion-MNIST / MNIST file format), gzip or plain: the
// format is detected from the first bytes (zlib reads plain files as-is).
// Only unsigned-byte payloads (type 0x08) are accepted. Every check fails
// with Error(kDataLoss) naming the file, the byte OFFSET in the decompressed
// stream and what was expected: bad magic, wrong rank, zero or huge dims, a
// truncated payload, a corrupt gzip stream or one cut before its CRC trailer,
// trailing bytes after the payload.
// A missing or unreadable file is Error(kNotFound).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace dtrain::data {

struct IdxArray {
  std::vector<int64_t> dims;  // e.g. {60000, 28, 28}
  std::vector<uint8_t> data;  // product(dims) bytes, row-major
};

// Reads `path`; its rank (number of dims) must be `expected_rank`.
IdxArray ReadIdx(const std::string& path, int expected_rank);

// The same checks on the bytes of a file held in memory (gzip or plain);
// `name` stands for the path in messages. Never Error(kNotFound).
IdxArray ParseIdx(std::span<const uint8_t> bytes, const std::string& name, int expected_rank);

}  // namespace dtrain::data
