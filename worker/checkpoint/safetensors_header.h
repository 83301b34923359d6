// Internal to safetensors.cc (and its fuzz target): the strict reader of a
// safetensors file's length prefix and JSON header, and the message helpers
// the writer shares with it.
//
// ParseSafetensorsHeader checks everything ParseSafetensors documents
// (safetensors.h) except converting the values: it throws the same
// Error(kDataLoss) / Error(kInvalidArgument) messages, and on success every
// tensor has a supported dtype, its data_offsets span exactly numel x dtype
// size, and the tensors cover the data buffer exactly.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace dtrain::ckpt::safetensors_internal {

inline constexpr std::string_view kMetadataKey = "__metadata__";

struct HeaderTensor {
  std::string name, dtype;      // dtype: F32, F16, BF16, F64 or I64
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // "data_offsets": bytes [begin, end) of the data buffer
};

struct SafetensorsHeader {
  std::map<std::string, std::string> metadata;  // "__metadata__"
  std::vector<HeaderTensor> tensors;            // in header order
  uint64_t data_at = 0;                         // file offset of the data buffer: 8 + header length
};

// `name` stands for the file in messages.
SafetensorsHeader ParseSafetensorsHeader(std::span<const uint8_t> bytes, const std::string& name);

// Bytes per element of the dtypes the reader converts; 0 for any other.
uint64_t DtypeBytes(std::string_view dtype);
// numel x unit, or -1 when a dim is negative or the running product passes INT64_MAX.
int64_t CheckedBytes(const std::vector<int64_t>& shape, int64_t unit);
// "[2, 3]"
std::string ShapeText(const std::vector<int64_t>& shape);
// A name or value for a message, in quotes: printable ASCII as-is, the rest as \xNN.
std::string Quote(std::string_view s, size_t max_bytes = 64, const char* quote = "'");

}  // namespace dtrain::ckpt::safetensors_internal
