// The dtrain shard format, version 1: an image data set (worker/data/image_records.h)
// as a few self-describing files of ~256 MiB that a reader opens by reading only
// each file's header and index, then reads any record with one pread.
//
// Files: DIR/<split>-NNNNN-of-MMMMM.dtshard; NNNNN is the shard (from 0), MMMMM
// the shard count, both zero-padded to max(5, digits of MMMMM). The split's
// records are shard 0's in index order, then shard 1's, ...; dtrain-pack keeps
// the ImageFolder's order (class, then name), so record k == folder record k
// (unless --skip-bad left files out).
//
// One shard; integers little-endian, offsets from the start of the file:
//   header, 64 bytes at offset 0
//      0  8  magic         "DTRAINSH"
//      8  4  u32 version   1; offsets 0..11 mean the same in every version
//     12  4  u32 shard     NNNNN                    16  4  u32 shards   MMMMM
//     20  4  u32 records   n >= 1                   24  8  u64 first    the split's index of record 0
//     32  8  u64 index_offset = 64 + the records' total length
//     40  4  u32 classes   C >= 1                   44  4  u32 class_bytes (the class block's size)
//     48  4  u32 index_crc CRC32C of [index_offset, end of file): the index and the class block
//     52  8  zero                                   60  4  u32 header_crc CRC32C of bytes [0, 60)
//   records: the encoded images (JPEG/PNG files' bytes), back to back from offset 64
//   index at index_offset: n entries of 24 bytes
//      0  8  u64 offset    record 0 at 64, record j+1 right after record j
//      8  4  u32 length    12 4 u32 label (< C)    16 4 u32 crc, CRC32C of the record's bytes    20 4 zero
//   class block right after the index: C × (u32 length L >= 1, L bytes of UTF-8), label order,
//   the same in every shard of the split
//   the file ends there: size == index_offset + 24·n + class_bytes.
// CRC32C is common/crc32c.h's (Castagnoli, crc32c(b"123456789") == 0xE3069283).
//
// Reading it in Python (tests/integration/test_pack.py does exactly this):
//   b = open(path, "rb").read()
//   (magic, version, shard, shards, n, first, index_offset, C, class_bytes, index_crc, _,
//    header_crc) = struct.unpack_from("<8sIIIIQQIIIQI", b, 0)
//   assert magic == b"DTRAINSH" and version == 1
//   assert crc32c(b[:60]) == header_crc and crc32c(b[index_offset:]) == index_crc
//   pos, names = index_offset + 24 * n, []
//   for _ in range(C):
//       (L,) = struct.unpack_from("<I", b, pos); names.append(b[pos + 4:pos + 4 + L].decode()); pos += 4 + L
//   for j in range(n):
//       offset, length, label, crc, _ = struct.unpack_from("<QIIII", b, index_offset + 24 * j)
//       image = b[offset:offset + length]; assert crc32c(image) == crc   # record first + j
//
// Writing is atomic per split: shards go to hidden temporaries
// (.<split>-NNNNN.dtshard.tmp.<pid>, no magic until their header is written last)
// and are renamed to their final names only after all of them are complete.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "worker/data/image_decode.h"

namespace dtrain::data {

inline constexpr uint32_t kShardVersion = 1;
inline constexpr size_t kShardHeaderBytes = 64;
inline constexpr size_t kShardEntryBytes = 24;
inline constexpr const char* kShardSuffix = ".dtshard";

struct ShardHeader {
  uint32_t version = kShardVersion;
  uint32_t shard = 0, shards = 0, records = 0;
  uint64_t first = 0, index_offset = 0;
  uint32_t classes = 0, class_bytes = 0, index_crc = 0;
};

struct ShardEntry {
  uint64_t offset = 0;
  uint32_t length = 0;
  int32_t label = 0;
  uint32_t crc = 0;
};

// "<split>-NNNNN-of-MMMMM.dtshard".
std::string ShardFileName(const std::string& split, uint32_t shard, uint32_t shards);
// True if `name` (no folder) is one of `split`'s shard file names; sets *shard, *shards.
bool ParseShardFileName(const std::string& name, const std::string& split, uint32_t* shard, uint32_t* shards);

// The 64 header bytes, header_crc included.
std::array<uint8_t, kShardHeaderBytes> EncodeShardHeader(const ShardHeader& h);

// Checks the header of a file of `file_size` bytes: magic, version (Error
// kInvalidArgument "<file>: dtrain shard format version N; this dtrain reads
// version 1 — repack with this version's dtrain-pack"), header_crc, the fields,
// and that the size is exactly what they describe (a truncated or extended
// file is Error kDataLoss naming `file` and both sizes).
ShardHeader ParseShardHeader(std::span<const uint8_t> header, uint64_t file_size, const std::string& file);

// The index and class block (the bytes from index_offset to the end).
std::vector<uint8_t> EncodeShardIndex(const std::vector<ShardEntry>& entries,
                                      const std::vector<std::string>& class_names);

struct ShardIndex {
  std::vector<ShardEntry> entries;
  std::vector<std::string> class_names;
};
// Checks index_crc, that the records tile [64, index_offset) in order, the
// labels and the class block; Error(kDataLoss) naming `file` and the offset.
ShardIndex ParseShardIndex(const ShardHeader& h, std::span<const uint8_t> tail, const std::string& file);

// A whole shard held in memory: header and index checks (tests, fuzzing).
struct ParsedShard {
  ShardHeader header;
  ShardIndex index;
};
ParsedShard ParseShard(std::span<const uint8_t> bytes, const std::string& file);

// What dtrain-pack accepts: bytes that ReadImageInfo recognises as a JPEG or
// PNG (the name's extension is not trusted). Otherwise Error(kInvalidArgument)
// naming `where`, what the bytes look like, and what is allowed.
ImageInfo CheckPackableImage(std::span<const uint8_t> bytes, const std::string& where);

// Writes one split's shards into `dir` (created if missing). Records go into
// the current shard until the next one would take the file past `shard_bytes`
// (a record larger than that gets a shard of its own). Errors (no space, a
// read-only folder): Error(kUnavailable) naming the file. Not thread-safe.
class ShardWriter {
 public:
  ShardWriter(std::string dir, std::string split, std::vector<std::string> class_names, uint64_t shard_bytes);
  ~ShardWriter();  // without a successful Commit(): removes the temporaries it wrote
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;

  void Add(int32_t label, std::span<const uint8_t> bytes);

  // Finishes the last shard, writes every header (the shard count is known
  // now), fsyncs, then renames the temporaries to their final names and
  // fsyncs the folder. replace_existing: first removes the split's shards
  // already in `dir` (else their presence is Error(kInvalidArgument)).
  // Returns the final paths. Needs at least one record.
  std::vector<std::string> Commit(bool replace_existing);

  int64_t records() const { return records_; }
  uint64_t bytes() const { return bytes_; }  // file bytes written so far

 private:
  struct Done {
    std::string temp;
    ShardHeader header;
  };
  void CloseShard();
  void Flush();

  std::string dir_, split_;
  std::vector<std::string> class_names_;
  uint64_t shard_bytes_, class_block_bytes_;
  int fd_ = -1;
  std::string temp_;
  uint64_t pos_ = 0;  // bytes of the current shard's file written (or buffered)
  std::vector<uint8_t> buf_;
  std::vector<ShardEntry> entries_;
  std::vector<Done> done_;
  int64_t records_ = 0;
  uint64_t bytes_ = 0;
  bool committed_ = false;
};

}  // namespace dtrain::data
