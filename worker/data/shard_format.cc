#include "worker/data/shard_format.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "common/crc32c.h"
#include "common/error.h"
#include "common/little_endian.h"

namespace dtrain::data {
namespace {

constexpr std::array<uint8_t, 8> kMagic = {'D', 'T', 'R', 'A', 'I', 'N', 'S', 'H'};
constexpr size_t kFlushBytes = 4 << 20;


std::string Hex(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}
std::string Num(uint64_t v) { return std::to_string(v); }

// The first bytes as printable text or \xNN, for "what is this file" messages.
std::string Peek(std::span<const uint8_t> b, size_t max_bytes = 8) {
  std::string out = "'";
  for (size_t i = 0; i < b.size() && i < max_bytes; ++i) {
    if (b[i] >= 0x20 && b[i] < 0x7f && b[i] != '\'' && b[i] != '\\') {
      out += static_cast<char>(b[i]);
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", b[i]);
      out += hex;
    }
  }
  return out + "'";
}

std::string Errno() { return std::strerror(errno); }

const std::string kRestore = "restore the shard from a good copy or repack it with dtrain-pack";

}  // namespace

std::string ShardFileName(const std::string& split, uint32_t shard, uint32_t shards) {
  const int width = std::max<int>(5, static_cast<int>(std::to_string(shards).size()));
  char buf[64];
  std::snprintf(buf, sizeof buf, "-%0*u-of-%0*u", width, shard, width, shards);
  return split + buf + kShardSuffix;
}

bool ParseShardFileName(const std::string& name, const std::string& split, uint32_t* shard, uint32_t* shards) {
  if (name.size() <= split.size() + 1 || name.compare(0, split.size(), split) != 0 || name[split.size()] != '-')
    return false;
  unsigned long long n = 0, m = 0;
  int used = 0;
  const std::string rest = name.substr(split.size());
  if (std::sscanf(rest.c_str(), "-%9llu-of-%9llu%n", &n, &m, &used) != 2) return false;
  if (n > UINT32_MAX || m > UINT32_MAX) return false;
  // Only the canonical spelling: the same padding, the suffix, nothing else.
  if (ShardFileName(split, static_cast<uint32_t>(n), static_cast<uint32_t>(m)) != name) return false;
  *shard = static_cast<uint32_t>(n);
  *shards = static_cast<uint32_t>(m);
  return true;
}

std::array<uint8_t, kShardHeaderBytes> EncodeShardHeader(const ShardHeader& h) {
  std::array<uint8_t, kShardHeaderBytes> b{};
  std::copy(kMagic.begin(), kMagic.end(), b.begin());
  StoreLE32(&b[8], h.version);
  StoreLE32(&b[12], h.shard);
  StoreLE32(&b[16], h.shards);
  StoreLE32(&b[20], h.records);
  StoreLE64(&b[24], h.first);
  StoreLE64(&b[32], h.index_offset);
  StoreLE32(&b[40], h.classes);
  StoreLE32(&b[44], h.class_bytes);
  StoreLE32(&b[48], h.index_crc);
  StoreLE32(&b[60], Crc32c(std::span<const uint8_t>(b).first(60)));
  return b;
}

ShardHeader ParseShardHeader(std::span<const uint8_t> b, uint64_t file_size, const std::string& file) {
  if (b.size() < kShardHeaderBytes || file_size < kShardHeaderBytes) {
    Fail(ErrorCode::kDataLoss, file + ": truncated: " + Num(std::min<uint64_t>(file_size, b.size())) +
                                   " bytes, shorter than a dtrain shard's 64-byte header (an interrupted copy? "
                                   "copy it again or repack)");
  }
  if (!std::equal(kMagic.begin(), kMagic.end(), b.begin())) {
    Fail(ErrorCode::kDataLoss,
         file + ": not a dtrain shard: bytes 0..7 are " + Peek(b) + ", a shard starts with 'DTRAINSH'");
  }
  ShardHeader h;
  h.version = LoadLE32(&b[8]);
  if (h.version != kShardVersion) {
    Fail(ErrorCode::kInvalidArgument, file + ": dtrain shard format version " + Num(h.version) +
                                          "; this dtrain reads version " + Num(kShardVersion) +
                                          " — repack with this version's dtrain-pack");
  }
  const uint32_t stored = LoadLE32(&b[60]), actual = Crc32c(b.first(60));
  if (stored != actual) {
    Fail(ErrorCode::kDataLoss, file + ": the header fails its CRC32C (stored " + Hex(stored) +
                                   " at byte offset 60, "
                                   "computed " +
                                   Hex(actual) + " over bytes 0..59); " + kRestore);
  }
  h.shard = LoadLE32(&b[12]);
  h.shards = LoadLE32(&b[16]);
  h.records = LoadLE32(&b[20]);
  h.first = LoadLE64(&b[24]);
  h.index_offset = LoadLE64(&b[32]);
  h.classes = LoadLE32(&b[40]);
  h.class_bytes = LoadLE32(&b[44]);
  h.index_crc = LoadLE32(&b[48]);
  auto bad = [&](size_t offset, const std::string& what) {
    Fail(ErrorCode::kDataLoss,
         file + ": bad header field at byte offset " + Num(offset) + ": " + what + "; " + kRestore);
  };
  if (LoadLE64(&b[52]) != 0) bad(52, "bytes 52..59 must be zero");
  if (h.shards == 0 || h.shard >= h.shards) bad(12, "shard " + Num(h.shard) + " of " + Num(h.shards));
  if (h.records == 0) bad(20, "0 records (a shard holds at least one)");
  if (h.classes == 0) bad(40, "0 classes");
  if (h.index_offset < kShardHeaderBytes) bad(32, "index_offset " + Num(h.index_offset) + " < 64");
  if (uint64_t{h.class_bytes} < 5ull * h.classes) {
    bad(44, Num(h.class_bytes) + " bytes cannot hold " + Num(h.classes) + " class names");
  }
  const uint64_t tail = kShardEntryBytes * uint64_t{h.records} + h.class_bytes;  // < 2^38
  const bool overflow = h.index_offset > UINT64_MAX - tail;
  const uint64_t expected = overflow ? UINT64_MAX : h.index_offset + tail;
  const std::string described = "its header describes " + (overflow ? std::string("more than 2^64") : Num(expected)) +
                                " (records up to byte " + Num(h.index_offset) + ", then a " +
                                Num(kShardEntryBytes * uint64_t{h.records}) + "-byte index of " + Num(h.records) +
                                " records and " + Num(h.class_bytes) + " bytes of class names)";
  if (file_size < expected) {
    Fail(ErrorCode::kDataLoss, file + ": truncated: " + Num(file_size) + " bytes, but " + described +
                                   "; an interrupted copy? copy it again or repack");
  }
  if (file_size > expected) {
    Fail(ErrorCode::kDataLoss, file + ": " + Num(file_size) + " bytes, " + Num(file_size - expected) + " more than " +
                                   described + "; " + kRestore);
  }
  return h;
}

std::vector<uint8_t> EncodeShardIndex(const std::vector<ShardEntry>& entries,
                                      const std::vector<std::string>& class_names) {
  size_t size = entries.size() * kShardEntryBytes;
  for (const auto& c : class_names) size += 4 + c.size();
  std::vector<uint8_t> out(size);
  uint8_t* p = out.data();
  for (const ShardEntry& e : entries) {
    StoreLE64(p, e.offset);
    StoreLE32(p + 8, e.length);
    StoreLE32(p + 12, static_cast<uint32_t>(e.label));
    StoreLE32(p + 16, e.crc);
    p += kShardEntryBytes;
  }
  for (const auto& c : class_names) {
    StoreLE32(p, static_cast<uint32_t>(c.size()));
    std::memcpy(p + 4, c.data(), c.size());
    p += 4 + c.size();
  }
  return out;
}

ShardIndex ParseShardIndex(const ShardHeader& h, std::span<const uint8_t> tail, const std::string& file) {
  const uint64_t index_bytes = kShardEntryBytes * uint64_t{h.records};
  if (tail.size() != index_bytes + h.class_bytes) {
    Fail(ErrorCode::kDataLoss, file + ": the index and class names at byte offset " + Num(h.index_offset) + " are " +
                                   Num(tail.size()) + " bytes, the header says " + Num(index_bytes + h.class_bytes));
  }
  const uint32_t actual = Crc32c(tail);
  if (actual != h.index_crc) {
    Fail(ErrorCode::kDataLoss, file + ": the index (byte offset " + Num(h.index_offset) +
                                   " to the end) fails its "
                                   "CRC32C (stored " +
                                   Hex(h.index_crc) + " in the header, computed " + Hex(actual) + "); " + kRestore);
  }
  ShardIndex out;
  out.entries.resize(h.records);
  uint64_t next = kShardHeaderBytes;
  for (uint32_t j = 0; j < h.records; ++j) {
    const uint8_t* p = tail.data() + uint64_t{j} * kShardEntryBytes;
    ShardEntry& e = out.entries[j];
    e.offset = LoadLE64(p);
    e.length = LoadLE32(p + 8);
    const uint32_t label = LoadLE32(p + 12);
    e.crc = LoadLE32(p + 16);
    const std::string at = file + ": index entry " + Num(j) + " (byte offset " +
                           Num(h.index_offset + uint64_t{j} * kShardEntryBytes) + "): ";
    if (e.offset != next) {
      Fail(ErrorCode::kDataLoss, at + "record offset " + Num(e.offset) + ", expected " + Num(next) +
                                     " (records lie back to back from byte 64); " + kRestore);
    }
    if (e.length > h.index_offset - next) {
      Fail(ErrorCode::kDataLoss, at + "a " + Num(e.length) + "-byte record at " + Num(e.offset) +
                                     " runs past the records' end at " + Num(h.index_offset) + "; " + kRestore);
    }
    if (label >= h.classes) {
      Fail(ErrorCode::kDataLoss,
           at + "label " + Num(label) + " is not below the " + Num(h.classes) + " classes; " + kRestore);
    }
    if (LoadLE32(p + 20) != 0) Fail(ErrorCode::kDataLoss, at + "bytes 20..23 must be zero; " + kRestore);
    e.label = static_cast<int32_t>(label);
    next += e.length;
  }
  if (next != h.index_offset) {
    Fail(ErrorCode::kDataLoss, file + ": the records end at byte " + Num(next) + " but the index starts at " +
                                   Num(h.index_offset) + "; " + kRestore);
  }
  size_t pos = index_bytes;
  out.class_names.reserve(h.classes);
  for (uint32_t c = 0; c < h.classes; ++c) {
    const std::string at = file + ": class name " + Num(c) + " (byte offset " + Num(h.index_offset + pos) + "): ";
    if (tail.size() - pos < 4) Fail(ErrorCode::kDataLoss, at + "the class block ends early; " + kRestore);
    const uint32_t len = LoadLE32(tail.data() + pos);
    if (len == 0 || len > tail.size() - pos - 4) {
      Fail(ErrorCode::kDataLoss,
           at + "length " + Num(len) + " (allowed 1.." + Num(tail.size() - pos - 4) + "); " + kRestore);
    }
    out.class_names.emplace_back(reinterpret_cast<const char*>(tail.data() + pos + 4), len);
    pos += 4 + len;
  }
  if (pos != tail.size()) {
    Fail(ErrorCode::kDataLoss, file + ": " + Num(tail.size() - pos) + " bytes after the last class name (byte offset " +
                                   Num(h.index_offset + pos) + "); " + kRestore);
  }
  return out;
}

ParsedShard ParseShard(std::span<const uint8_t> bytes, const std::string& file) {
  ParsedShard s;
  s.header = ParseShardHeader(bytes.first(std::min(bytes.size(), kShardHeaderBytes)), bytes.size(), file);
  s.index = ParseShardIndex(s.header, bytes.subspan(s.header.index_offset), file);
  return s;
}

ImageInfo CheckPackableImage(std::span<const uint8_t> bytes, const std::string& where) {
  try {
    return ReadImageInfo(bytes.data(), bytes.size());
  } catch (const Error& e) {
    // ReadImageInfo says what the bytes are; say it once.
    const std::string what = e.what();
    const std::string kind = "not a JPEG or PNG image";
    Fail(ErrorCode::kInvalidArgument,
         where + ": " +
             (what.starts_with(kind) ? what
                                     : kind + " that can be read (" + Num(bytes.size()) + " bytes starting " +
                                           Peek(bytes) + ": " + what + ")") +
             "; dtrain-pack packs JPEG and PNG files only, whatever their extension — convert or remove it, or "
             "pass --skip-bad to leave such files out");
  }
}

// ---- ShardWriter ----

ShardWriter::ShardWriter(std::string dir, std::string split, std::vector<std::string> class_names, uint64_t shard_bytes)
    : dir_(std::move(dir)), split_(std::move(split)), class_names_(std::move(class_names)), shard_bytes_(shard_bytes) {
  if (split_.empty() || split_.find('/') != std::string::npos || split_[0] == '.') {
    Fail(ErrorCode::kInvalidArgument, "split name '" + split_ +
                                          "': allowed a non-empty name without '/' that does "
                                          "not start with '.'");
  }
  if (class_names_.empty()) Fail(ErrorCode::kInvalidArgument, "a split needs at least one class name");
  class_block_bytes_ = 0;
  for (const auto& c : class_names_) {
    if (c.empty() || c.size() > UINT32_MAX / 2) Fail(ErrorCode::kInvalidArgument, "class names must be non-empty");
    class_block_bytes_ += 4 + c.size();
  }
  if (class_block_bytes_ > UINT32_MAX) Fail(ErrorCode::kInvalidArgument, "the class names exceed 4 GiB");
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) Fail(ErrorCode::kUnavailable, dir_ + ": cannot create the output folder: " + ec.message());
}

ShardWriter::~ShardWriter() {
  if (committed_) return;
  if (fd_ >= 0) ::close(fd_);
  if (!temp_.empty()) ::unlink(temp_.c_str());
  for (const Done& d : done_) ::unlink(d.temp.c_str());
}

void ShardWriter::Flush() {
  size_t off = 0;
  while (off < buf_.size()) {
    const ssize_t w = ::write(fd_, buf_.data() + off, buf_.size() - off);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) Fail(ErrorCode::kUnavailable, temp_ + ": write failed: " + Errno());
    off += static_cast<size_t>(w);
  }
  buf_.clear();
}

void ShardWriter::Add(int32_t label, std::span<const uint8_t> bytes) {
  if (label < 0 || static_cast<size_t>(label) >= class_names_.size()) {
    Fail(ErrorCode::kInvalidArgument,
         "label " + std::to_string(label) + " is not in [0, " + Num(class_names_.size()) + ")");
  }
  if (bytes.size() > UINT32_MAX) Fail(ErrorCode::kInvalidArgument, "a record of 4 GiB or more cannot be packed");
  const uint64_t after = pos_ + bytes.size() + kShardEntryBytes * (entries_.size() + 1) + class_block_bytes_;
  if (fd_ >= 0 && (after > shard_bytes_ || entries_.size() == UINT32_MAX)) CloseShard();
  if (fd_ < 0) {
    char name[64];
    std::snprintf(name, sizeof name, "-%05zu%s.tmp.%d", done_.size(), kShardSuffix, static_cast<int>(::getpid()));
    temp_ = dir_ + "/." + split_ + name;
    fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) Fail(ErrorCode::kUnavailable, temp_ + ": cannot create: " + Errno());
    buf_.assign(kShardHeaderBytes, 0);  // the header is written last, by Commit()
    pos_ = kShardHeaderBytes;
  }
  entries_.push_back({pos_, static_cast<uint32_t>(bytes.size()), label, Crc32c(bytes)});
  buf_.insert(buf_.end(), bytes.begin(), bytes.end());
  pos_ += bytes.size();
  ++records_;
  if (buf_.size() >= kFlushBytes) Flush();
}

void ShardWriter::CloseShard() {
  const std::vector<uint8_t> tail = EncodeShardIndex(entries_, class_names_);
  buf_.insert(buf_.end(), tail.begin(), tail.end());
  Flush();
  if (::fdatasync(fd_) != 0) Fail(ErrorCode::kUnavailable, temp_ + ": fdatasync failed: " + Errno());
  if (::close(fd_) != 0) {
    fd_ = -1;
    Fail(ErrorCode::kUnavailable, temp_ + ": close failed: " + Errno());
  }
  fd_ = -1;
  ShardHeader h;
  h.shard = static_cast<uint32_t>(done_.size());
  h.records = static_cast<uint32_t>(entries_.size());
  h.first = static_cast<uint64_t>(records_) - entries_.size();
  h.index_offset = pos_;
  h.classes = static_cast<uint32_t>(class_names_.size());
  h.class_bytes = static_cast<uint32_t>(class_block_bytes_);
  h.index_crc = Crc32c(tail);
  bytes_ += pos_ + tail.size();
  done_.push_back({temp_, h});
  temp_.clear();
  entries_.clear();
  pos_ = 0;
}

std::vector<std::string> ShardWriter::Commit(bool replace_existing) {
  if (fd_ >= 0) CloseShard();
  if (done_.empty()) Fail(ErrorCode::kInvalidArgument, "split '" + split_ + "' has no records to write");
  if (done_.size() > UINT32_MAX) Fail(ErrorCode::kInvalidArgument, "too many shards");
  const auto shards = static_cast<uint32_t>(done_.size());
  for (Done& d : done_) {
    d.header.shards = shards;
    const auto header = EncodeShardHeader(d.header);
    const int fd = ::open(d.temp.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) Fail(ErrorCode::kUnavailable, d.temp + ": cannot reopen to write its header: " + Errno());
    const bool ok =
        ::pwrite(fd, header.data(), header.size(), 0) == static_cast<ssize_t>(header.size()) && ::fdatasync(fd) == 0;
    const std::string why = ok ? "" : Errno();
    ::close(fd);
    if (!ok) Fail(ErrorCode::kUnavailable, d.temp + ": writing its header failed: " + why);
  }
  // The split's shards already here (an earlier pack): refused, or removed now.
  std::vector<std::string> old;
  if (DIR* d = ::opendir(dir_.c_str())) {
    while (const dirent* e = ::readdir(d)) {
      uint32_t n, m;
      if (ParseShardFileName(e->d_name, split_, &n, &m)) old.push_back(dir_ + "/" + e->d_name);
    }
    ::closedir(d);
  }
  if (!old.empty() && !replace_existing) {
    Fail(ErrorCode::kInvalidArgument, dir_ + " already holds " + Num(old.size()) + " shards of split '" + split_ +
                                          "' (e.g. " + old[0] + "); remove them or replace them");
  }
  for (const auto& f : old)
    if (::unlink(f.c_str()) != 0 && errno != ENOENT) Fail(ErrorCode::kUnavailable, f + ": cannot remove: " + Errno());
  std::vector<std::string> paths;
  for (const Done& d : done_) {
    paths.push_back(dir_ + "/" + ShardFileName(split_, d.header.shard, shards));
    if (::rename(d.temp.c_str(), paths.back().c_str()) != 0) {
      const std::string why = Errno();
      for (size_t k = 0; k + 1 < paths.size(); ++k) ::unlink(paths[k].c_str());  // no partial set left behind
      Fail(ErrorCode::kUnavailable, d.temp + ": cannot rename to " + paths.back() + ": " + why);
    }
  }
  committed_ = true;
  const int dfd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    const bool ok = ::fsync(dfd) == 0;
    ::close(dfd);
    if (!ok) Fail(ErrorCode::kUnavailable, dir_ + ": fsync of the folder failed: " + Errno());
  }
  return paths;
}

}  // namespace dtrain::data
