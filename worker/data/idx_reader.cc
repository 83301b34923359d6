#include "worker/data/idx_reader.h"

#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "common/error.h"

namespace dtrain::data {
namespace {

// A byte stream over a plain or gzip file. Offsets count DECOMPRESSED bytes.
class ByteStream {
 public:
  // A file: Error(kNotFound) when it cannot be opened.
  explicit ByteStream(const std::string& path) : path_(path) {
    file_ = std::fopen(path.c_str(), "rb");
    if (!file_) Fail(ErrorCode::kNotFound, path + ": cannot open IDX file");
    Sniff();
  }
  // Bytes in memory (not copied; they must outlive the stream); `name` stands for the path.
  ByteStream(std::span<const uint8_t> bytes, const std::string& name) : path_(name), mem_(bytes) { Sniff(); }
  ~ByteStream() {
    if (inflating_) inflateEnd(&zs_);
    if (file_) std::fclose(file_);
  }
  ByteStream(const ByteStream&) = delete;
  ByteStream& operator=(const ByteStream&) = delete;

  // Reads up to n bytes; fewer only at the end of the (decompressed) stream.
  size_t Read(uint8_t* dst, size_t n) {
    size_t got = gzip_ ? ReadGzip(dst, n) : ReadPlain(dst, n);
    offset_ += got;
    return got;
  }
  uint64_t offset() const { return offset_; }
  bool gzip() const { return gzip_; }
  // A gzip stream reached its end marker (and zlib checked its CRC-32 and size).
  bool gzip_complete() const { return stream_end_; }

 private:
  // Reads the first bytes and detects gzip.
  void Sniff() {
    in_.resize(1 << 16);
    in_len_ = Fill(in_.data(), in_.size());
    gzip_ = in_len_ >= 2 && in_[0] == 0x1f && in_[1] == 0x8b;
    if (gzip_) {
      zs_.next_in = in_.data();
      zs_.avail_in = static_cast<uInt>(in_len_);
      if (inflateInit2(&zs_, 15 + 16) != Z_OK) Fail(ErrorCode::kInternal, path_ + ": inflateInit2 failed");
      inflating_ = true;
    }
  }

  // Up to n raw (possibly compressed) bytes from the file or the memory.
  size_t Fill(uint8_t* dst, size_t n) {
    if (file_) return std::fread(dst, 1, n, file_);
    const size_t got = std::min(n, mem_.size() - mem_pos_);
    if (got) std::memcpy(dst, mem_.data() + mem_pos_, got);
    mem_pos_ += got;
    return got;
  }

  size_t ReadPlain(uint8_t* dst, size_t n) {
    size_t got = 0;
    if (in_pos_ < in_len_) {  // bytes read while sniffing the format
      got = std::min(n, in_len_ - in_pos_);
      std::copy(in_.data() + in_pos_, in_.data() + in_pos_ + got, dst);
      in_pos_ += got;
    }
    if (got < n) got += Fill(dst + got, n - got);
    if (got < n && file_ && std::ferror(file_)) Fail(ErrorCode::kDataLoss, path_ + ": read error at offset " + std::to_string(offset_ + got));
    return got;
  }

  size_t ReadGzip(uint8_t* dst, size_t n) {
    size_t got = 0;
    while (got < n && !stream_end_) {
      if (zs_.avail_in == 0 && !file_eof_) {
        in_len_ = Fill(in_.data(), in_.size());
        if (in_len_ == 0) file_eof_ = true;
        zs_.next_in = in_.data();
        zs_.avail_in = static_cast<uInt>(in_len_);
      }
      size_t chunk = std::min<size_t>(n - got, 1u << 30);
      zs_.next_out = dst + got;
      zs_.avail_out = static_cast<uInt>(chunk);
      int ret = inflate(&zs_, Z_NO_FLUSH);
      got += chunk - zs_.avail_out;
      if (ret == Z_STREAM_END) {
        stream_end_ = true;
      } else if (ret == Z_BUF_ERROR && zs_.avail_in == 0 && file_eof_) {
        break;  // compressed stream ends early: the caller reports the truncation
      } else if (ret != Z_OK && ret != Z_BUF_ERROR) {
        Fail(ErrorCode::kDataLoss,
             path_ + ": corrupt gzip data at offset " + std::to_string(offset_ + got) +
                 " of the decompressed stream: zlib: " + (zs_.msg ? zs_.msg : "error " + std::to_string(ret)));
      }
    }
    return got;
  }

  std::string path_;
  FILE* file_ = nullptr;  // null: reading mem_
  std::span<const uint8_t> mem_;
  size_t mem_pos_ = 0;
  std::vector<uint8_t> in_;
  size_t in_len_ = 0, in_pos_ = 0;
  bool gzip_ = false, inflating_ = false, file_eof_ = false, stream_end_ = false;
  z_stream zs_{};
  uint64_t offset_ = 0;
};

std::string Hex(uint64_t v, int digits) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%0*llx", digits, static_cast<unsigned long long>(v));
  return buf;
}

// The format checks, shared by the file and the in-memory entry points.
IdxArray Parse(ByteStream& in, const std::string& path, int expected_rank) {
  // "<file>: <problem> at offset <n>[ of the decompressed stream]: <expected>"
  auto fail = [&](uint64_t at, const std::string& problem, const std::string& expected) {
    Fail(ErrorCode::kDataLoss, path + ": " + problem + " at offset " + std::to_string(at) +
                                   (in.gzip() ? " of the decompressed stream" : "") + ": " + expected);
  };
  uint8_t magic[4];
  size_t got = in.Read(magic, 4);
  if (got < 4) fail(got, "truncated", "expected a 4-byte IDX magic number");
  uint64_t magic_value = (uint64_t{magic[0]} << 24) | (magic[1] << 16) | (magic[2] << 8) | magic[3];
  const std::string expected_magic = Hex(0x800 + expected_rank, 8);
  if (magic[0] != 0 || magic[1] != 0)
    fail(0, "bad magic " + Hex(magic_value, 8), "expected " + expected_magic + " (IDX, unsigned bytes, " +
                std::to_string(expected_rank) + " dims)");
  if (magic[2] != 0x08)
    fail(2, "unsupported IDX element type " + Hex(magic[2], 2), "expected 0x08 (unsigned byte)");
  if (magic[3] != expected_rank)
    fail(3, "IDX has " + std::to_string(magic[3]) + " dims", "expected " + std::to_string(expected_rank));

  IdxArray out;
  uint64_t total = 1;
  for (int d = 0; d < expected_rank; ++d) {
    uint8_t b[4];
    uint64_t at = in.offset();
    got = in.Read(b, 4);
    if (got < 4) fail(at + got, "truncated", "expected the 4-byte size of dim " + std::to_string(d));
    uint64_t v = (uint64_t{b[0]} << 24) | (b[1] << 16) | (b[2] << 8) | b[3];
    if (v == 0) fail(at, "dim " + std::to_string(d) + " is 0", "expected a positive size");
    // Checked before multiplying: the product could wrap around 2^64 to a
    // small number and accept a tiny file with huge dims (found by review;
    // tests/fuzz/regressions/idx_reader/overflow-*).
    if (v > (uint64_t{1} << 36) / total)
      fail(at, "dims too large", "expected at most 2^36 payload bytes");
    total *= v;
    out.dims.push_back(static_cast<int64_t>(v));
  }
  const char* what = expected_rank == 1 ? "labels" : "pixels";
  // Grow in chunks (1 MiB, then doubling up to 64 MiB): a corrupt header
  // claiming huge dims fails at the real end of the file instead of
  // allocating what it claims.
  got = 0;
  while (got < total) {
    const uint64_t step = std::clamp<uint64_t>(got, uint64_t{1} << 20, uint64_t{64} << 20);
    size_t chunk = std::min<uint64_t>(total - got, step);
    out.data.resize(got + chunk);
    size_t n = in.Read(out.data.data() + got, chunk);
    got += n;
    if (n < chunk) break;
  }
  if (got < total)
    fail(in.offset(), "truncated", "expected " + std::to_string(total) + " bytes of " + what + " after the " +
                          std::to_string(4 + 4 * expected_rank) + "-byte header, got " + std::to_string(got));
  uint8_t extra;
  if (in.Read(&extra, 1) != 0)
    fail(in.offset() - 1, "unexpected trailing data", "expected the file to end after " +
                              std::to_string(total) + " bytes of " + what);
  if (in.gzip() && !in.gzip_complete())
    fail(in.offset(), "truncated gzip stream", "expected its 8-byte trailer (CRC-32 and size) after the " +
                                                   std::to_string(total) + " bytes of " + what);
  return out;
}

}  // namespace

IdxArray ReadIdx(const std::string& path, int expected_rank) {
  ByteStream in(path);
  return Parse(in, path, expected_rank);
}

IdxArray ParseIdx(std::span<const uint8_t> bytes, const std::string& name, int expected_rank) {
  ByteStream in(bytes, name);
  return Parse(in, name, expected_rank);
}

}  // namespace dtrain::data
