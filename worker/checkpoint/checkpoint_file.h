// Checkpoint file format (one file per rank and step): named string metadata,
// named float32 tensors and named byte blobs, written atomically and verified
// on read with a checksum.
//
// Layout, every integer little-endian:
//   "DTRAINCK"                      8-byte magic
//   u32 version                     1 (kCheckpointVersion)
//   u32 section count
//   section × count:
//     u8  kind                      1 meta (UTF-8 text), 2 tensor (float32 array), 3 blob (bytes)
//     u32 name length, name         1..kMaxNameBytes bytes of UTF-8, unique within its kind
//     u64 payload length, payload   tensor payloads: a multiple of 4 bytes (IEEE-754 float32)
//   u64 checksum                    CRC32C (common/crc32c.h) of every byte before it, zero-extended
// Sections are written meta, tensors, blobs, each sorted by name, so equal data
// gives byte-identical files.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

namespace dtrain::ckpt {

inline constexpr uint32_t kCheckpointVersion = 1;
inline constexpr uint32_t kMaxNameBytes = 4096;

struct CheckpointData {
  std::map<std::string, std::string> meta;              // e.g. model, world_size, step, epoch, seed, rank, kind
  std::map<std::string, std::vector<float>> tensors;    // e.g. params, momentum, bn_running
  std::map<std::string, std::vector<uint8_t>> blobs;    // anything else (RNG state)
  bool operator==(const CheckpointData&) const = default;
};

// Atomic: writes path + ".tmp.<pid>", fsyncs it, renames it over `path`, fsyncs
// the directory; a failure leaves any previous file at `path` untouched and
// removes the temporary. Creates parent directories. Throws
// Error(kUnavailable) naming the path and the errno text when the file system
// refuses (no space, permissions, a parent that is a file), Error(kInternal)
// for a failure to clean up, Error(kInvalidArgument) for a bad name or value
// (empty or not UTF-8, or a name longer than kMaxNameBytes).
void WriteCheckpointFile(const std::string& path, const CheckpointData& data);

// Reads and verifies a file written by WriteCheckpointFile. Throws
// Error(kNotFound) when it does not exist, Error(kUnavailable) when it cannot
// be read, and Error(kDataLoss) naming the path and the byte offset for bad
// magic, an unsupported version (naming the supported ones), truncation, a
// section longer than the rest of the file, trailing bytes, an unknown
// section kind, a bad name/value (empty, not UTF-8, too long, a tensor not a
// multiple of 4 bytes), duplicate names, or a checksum mismatch (expected vs
// actual). Messages read "<path>: <problem> at offset <n>: <expected>".
CheckpointData ReadCheckpointFile(const std::string& path);

// A meta entry of a checkpoint read from `file`; Error(kDataLoss) naming the
// file and key (and `hint`, e.g. how to get a newer checkpoint) when absent.
const std::string& MetaEntry(const CheckpointData& d, const std::string& file, const std::string& key,
                             const std::string& hint = "");
// The entry as an integer in [lo, hi]; Error(kDataLoss) naming it otherwise.
int64_t MetaInteger(const CheckpointData& d, const std::string& file, const std::string& key, int64_t lo,
                    int64_t hi, const std::string& hint = "");

// Same checks, from memory (for fuzzing); `name` stands for the path in messages.
CheckpointData ParseCheckpoint(std::span<const uint8_t> bytes, const std::string& name);

// The exact bytes WriteCheckpointFile writes. Throws Error(kInvalidArgument) as it does.
std::vector<uint8_t> SerializeCheckpoint(const CheckpointData& data);

}  // namespace dtrain::ckpt
