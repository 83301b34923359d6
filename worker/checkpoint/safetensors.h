// The safetensors format (https://github.com/huggingface/safetensors): how
// dtrain exports weights for PyTorch / Hugging Face and starts from them.
//
// Layout: u64 little-endian N, then N bytes of a UTF-8 JSON object
//   {"__metadata__": {"k": "v", ...},
//    "NAME": {"dtype": "F32", "shape": [2, 3], "data_offsets": [BEGIN, END]}, ...}
// then the data buffer; offsets are relative to its start, values are
// little-endian in C order, and the tensors cover the buffer exactly (no
// holes, no overlaps, nothing after the last one).
//
// The writer emits F32 and I64; the reader also converts F16, BF16 and F64 to
// float. Reading is strict (see ParseSafetensors); unknown fields inside a
// tensor entry are ignored, as the reference implementation does.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

namespace dtrain::ckpt {

inline constexpr uint64_t kSafetensorsMaxHeaderBytes = 100'000'000;  // the reference's limit

struct SafeTensor {
  std::string dtype;           // as in the file: "F32", "I64", "F16", "BF16", "F64"
  std::vector<int64_t> shape;  // [] for a scalar
  std::vector<float> f32;      // the values when dtype is F32, F16, BF16 or F64 (converted to float)
  std::vector<int64_t> i64;    // the values when dtype is I64
  int64_t numel() const;       // product of shape (1 for [])
  bool operator==(const SafeTensor&) const = default;
};

struct SafetensorsFile {
  std::map<std::string, std::string> metadata;  // "__metadata__" (string -> string only)
  std::map<std::string, SafeTensor> tensors;
  bool operator==(const SafetensorsFile&) const = default;
};

// Writes F32 tensors from f32 and I64 tensors from i64. Error(kInvalidArgument)
// naming the tensor for another dtype, a value count that does not match the
// shape (or values in the other vector), a negative or overflowing shape, an
// empty or "__metadata__" name, or a name or metadata string that is not UTF-8.
// Atomic like WriteCheckpointFile: path + ".tmp.<pid>", fsync, rename, fsync
// the directory; creates parent directories; a failure (Error(kUnavailable)
// naming the path and the errno text) leaves any old file untouched and no
// temporary behind.
void WriteSafetensorsFile(const std::string& path, const SafetensorsFile& f);

// The exact bytes WriteSafetensorsFile writes: "__metadata__" first (omitted
// when empty), then the tensors in name order with contiguous data in that
// order; compact JSON padded with spaces so the data starts 8-byte aligned.
std::vector<uint8_t> SerializeSafetensors(const SafetensorsFile& f);

// Reads and checks everything. Error(kNotFound) for a missing file,
// Error(kUnavailable) when it cannot be read, Error(kDataLoss) for a malformed
// file, "<path>: <problem> at offset <n>: <what is allowed/expected>": a file
// shorter than 8 bytes, a header length over the file or over
// kSafetensorsMaxHeaderBytes, a header that is not a JSON object (invalid JSON,
// not UTF-8, nested deeper than 128), duplicate keys in any object, an empty
// tensor name, an entry missing dtype/shape/data_offsets or with wrong JSON
// types, negative or overflowing dims, begin > end, end past the data, a byte
// length other than numel x dtype size, overlapping tensors, holes in the
// data buffer, trailing bytes, "__metadata__" not an object of strings (null
// reads as no metadata, as in the reference). Stricter than the reference on
// duplicate keys (it keeps one silently) and empty tensor names.
// A well-formed file with a dtype other than F32, F16, BF16, F64, I64 is
// Error(kInvalidArgument) naming the tensor, its dtype and the supported ones.
SafetensorsFile ReadSafetensorsFile(const std::string& path);

// Same checks, from memory; `name` stands for the path in messages.
SafetensorsFile ParseSafetensors(std::span<const uint8_t> bytes, const std::string& name);

}  // namespace dtrain::ckpt
