#include "worker/checkpoint/checkpoint_file.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <array>
#include <bit>
#include <cstdio>
#include <cstring>
#include <string_view>

#include "common/atomic_file.h"
#include "common/crc32c.h"
#include "common/error.h"
#include "common/little_endian.h"

namespace dtrain::ckpt {
namespace {

constexpr std::array<uint8_t, 8> kMagic = {'D', 'T', 'R', 'A', 'I', 'N', 'C', 'K'};
constexpr size_t kHeaderBytes = 16;         // magic, version, section count
constexpr size_t kSectionFixedBytes = 13;   // kind, name length, payload length
constexpr size_t kTrailerBytes = 8;         // checksum

enum SectionKind : uint8_t { kMetaSection = 1, kTensorSection = 2, kBlobSection = 3 };

const char* KindName(uint8_t kind) {
  switch (kind) {
    case kMetaSection: return "meta";
    case kTensorSection: return "tensor";
    case kBlobSection: return "blob";
  }
  return "unknown";
}


std::string Hex(uint64_t v, int digits) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%0*llx", digits, static_cast<unsigned long long>(v));
  return buf;
}

// A name or a few bytes for a message: printable ASCII as-is, the rest as \xNN.
std::string Quote(std::string_view s, size_t max_bytes = 64) {
  std::string out = "'";
  for (size_t i = 0; i < s.size() && i < max_bytes; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '\'' && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  if (s.size() > max_bytes) out += "...";
  return out + "'";
}

// Offset of the first byte that makes `s` invalid UTF-8, or npos.
size_t Utf8Error(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp, min;
    if ((c & 0xE0) == 0xC0) len = 2, cp = c & 0x1F, min = 0x80;
    else if ((c & 0xF0) == 0xE0) len = 3, cp = c & 0x0F, min = 0x800;
    else if ((c & 0xF8) == 0xF0) len = 4, cp = c & 0x07, min = 0x10000;
    else return i;
    if (s.size() - i < len) return i;
    for (size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += len;
  }
  return std::string_view::npos;
}

// ---- encoding ----

void CheckName(const char* kind, const std::string& name) {
  if (name.empty() || name.size() > kMaxNameBytes)
    Fail(ErrorCode::kInvalidArgument, std::string("checkpoint ") + kind + " name " + Quote(name) + " has " +
                                          std::to_string(name.size()) + " bytes (allowed: 1.." +
                                          std::to_string(kMaxNameBytes) + ")");
  if (Utf8Error(name) != std::string_view::npos)
    Fail(ErrorCode::kInvalidArgument, std::string("checkpoint ") + kind + " name " + Quote(name) + " is not UTF-8");
}

void CheckData(const CheckpointData& d) {
  for (const auto& [name, value] : d.meta) {
    CheckName("meta", name);
    if (Utf8Error(value) != std::string_view::npos)
      Fail(ErrorCode::kInvalidArgument, "checkpoint meta " + Quote(name) + " value " + Quote(value) + " is not UTF-8");
  }
  for (const auto& kv : d.tensors) CheckName("tensor", kv.first);
  for (const auto& kv : d.blobs) CheckName("blob", kv.first);
  if (d.meta.size() + d.tensors.size() + d.blobs.size() > UINT32_MAX)
    Fail(ErrorCode::kInvalidArgument, "checkpoint has more than 2^32-1 sections");
}

// Writes the format to sink.Write(const uint8_t*, size_t), checksumming as it goes.
template <class Sink>
class Encoder {
 public:
  explicit Encoder(Sink& sink) : sink_(sink) {}

  void Bytes(const void* p, size_t n) {
    if (n == 0) return;
    const auto* b = static_cast<const uint8_t*>(p);
    crc_ = Crc32c({b, n}, crc_);
    sink_.Write(b, n);
  }
  void U8(uint8_t v) { Bytes(&v, 1); }
  void U32(uint32_t v) {
    uint8_t b[4];
    StoreLE32(b, v);
    Bytes(b, 4);
  }
  void U64(uint64_t v) {
    uint8_t b[8];
    StoreLE64(b, v);
    Bytes(b, 8);
  }
  void SectionHeader(SectionKind kind, const std::string& name, uint64_t payload_bytes) {
    U8(kind);
    U32(static_cast<uint32_t>(name.size()));
    Bytes(name.data(), name.size());
    U64(payload_bytes);
  }
  void Floats(const std::vector<float>& v) {
    if constexpr (std::endian::native == std::endian::little) {
      Bytes(v.data(), v.size() * sizeof(float));
    } else {
      uint8_t buf[4096];
      for (size_t i = 0; i < v.size();) {
        size_t n = std::min<size_t>(v.size() - i, sizeof buf / 4);
        for (size_t k = 0; k < n; ++k) StoreLE32(buf + 4 * k, std::bit_cast<uint32_t>(v[i + k]));
        Bytes(buf, 4 * n);
        i += n;
      }
    }
  }
  // The trailer is not part of what it checksums.
  void Trailer() {
    uint8_t b[8];
    StoreLE64(b, crc_);
    sink_.Write(b, 8);
  }

 private:
  Sink& sink_;
  uint32_t crc_ = 0;
};

template <class Sink>
void Encode(const CheckpointData& d, Sink& sink) {
  CheckData(d);
  Encoder<Sink> e(sink);
  e.Bytes(kMagic.data(), kMagic.size());
  e.U32(kCheckpointVersion);
  e.U32(static_cast<uint32_t>(d.meta.size() + d.tensors.size() + d.blobs.size()));
  for (const auto& [name, value] : d.meta) {
    e.SectionHeader(kMetaSection, name, value.size());
    e.Bytes(value.data(), value.size());
  }
  for (const auto& [name, values] : d.tensors) {
    e.SectionHeader(kTensorSection, name, uint64_t{values.size()} * sizeof(float));
    e.Floats(values);
  }
  for (const auto& [name, bytes] : d.blobs) {
    e.SectionHeader(kBlobSection, name, bytes.size());
    e.Bytes(bytes.data(), bytes.size());
  }
  e.Trailer();
}

struct VectorSink {
  std::vector<uint8_t>& out;
  void Write(const uint8_t* p, size_t n) { out.insert(out.end(), p, p + n); }
};

// ---- decoding ----

struct SectionRef {
  uint8_t kind;
  size_t header_at, name_at, name_len, payload_at;
  uint64_t payload_len;
};

class Decoder {
 public:
  Decoder(std::span<const uint8_t> bytes, const std::string& name) : b_(bytes), name_(name) {}

  CheckpointData Run() {
    Header();
    std::vector<SectionRef> sections;
    sections.reserve(count_);  // bounded by the file size in Header()
    for (uint32_t i = 0; i < count_; ++i) sections.push_back(Section(i));
    Trailer();
    CheckpointData out;
    for (size_t i = 0; i < sections.size(); ++i) Decode(sections[i], i, out);
    return out;
  }

 private:
  // "<name>: <problem> at offset <n>: <expected>"
  [[noreturn]] void Fail(uint64_t at, const std::string& problem, const std::string& expected) const {
    dtrain::Fail(ErrorCode::kDataLoss,
                 name_ + ": " + problem + " at offset " + std::to_string(at) + ": " + expected);
  }
  size_t Left() const { return b_.size() - pos_; }
  // The file must hold n more bytes for `what`.
  void Need(size_t n, const std::string& what) const {
    if (Left() < n)
      Fail(b_.size(), "truncated",
           "expected " + what + " (" + std::to_string(n) + " bytes from offset " + std::to_string(pos_) +
               "), but the file ends after " + std::to_string(b_.size()) + " bytes");
  }
  uint32_t U32() {
    uint32_t v = LoadLE32(b_.data() + pos_);
    pos_ += 4;
    return v;
  }
  uint64_t U64() {
    uint64_t v = LoadLE64(b_.data() + pos_);
    pos_ += 8;
    return v;
  }

  void Header() {
    const size_t n = std::min(b_.size(), kMagic.size());
    if (!std::equal(b_.begin(), b_.begin() + n, kMagic.begin()))
      Fail(0, "bad magic " + Quote({reinterpret_cast<const char*>(b_.data()), n}),
           "expected 'DTRAINCK' (not a dtrain checkpoint file)");
    Need(kMagic.size(), "the 8-byte magic 'DTRAINCK'");
    pos_ = kMagic.size();
    Need(4, "the format version");
    const uint32_t version = U32();
    if (version != kCheckpointVersion)
      Fail(8, "unsupported checkpoint version " + std::to_string(version),
           "supported versions: " + std::to_string(kCheckpointVersion));
    Need(4, "the section count");
    count_ = U32();
    // Each section takes at least 14 bytes (a 1-byte name); the trailer 8.
    const uint64_t min_bytes = uint64_t{count_} * (kSectionFixedBytes + 1) + kTrailerBytes;
    if (min_bytes > Left())
      Fail(12, "section count " + std::to_string(count_) + " does not fit the file",
           std::to_string(count_) + " sections need at least " + std::to_string(min_bytes) +
               " bytes after the header, the file has " + std::to_string(Left()) + " (truncated or corrupt)");
  }

  SectionRef Section(uint32_t i) {
    SectionRef s{};
    s.header_at = pos_;
    const std::string which = "section " + std::to_string(i);
    Need(kSectionFixedBytes - 8, "the kind and name length of " + which);
    s.kind = b_[pos_++];
    const size_t len_at = pos_;
    s.name_len = U32();
    if (s.name_len == 0 || s.name_len > kMaxNameBytes)
      Fail(len_at, "bad name length " + std::to_string(s.name_len) + " of " + which,
           "expected 1.." + std::to_string(kMaxNameBytes) + " bytes");
    if (s.name_len > Left())
      Fail(len_at, "name of " + which + " (" + std::to_string(s.name_len) + " bytes) extends beyond the end of the file",
           "the file ends after " + std::to_string(b_.size()) + " bytes (truncated or corrupt length)");
    s.name_at = pos_;
    pos_ += s.name_len;
    const std::string named = which + " " + Quote(NameOf(s));
    Need(8, "the payload length of " + named);
    const size_t plen_at = pos_;
    s.payload_len = U64();
    if (s.payload_len > Left())
      Fail(plen_at, "payload of " + named + " (" + std::to_string(s.payload_len) + " bytes from offset " +
                        std::to_string(pos_) + ") extends beyond the end of the file",
           "the file ends after " + std::to_string(b_.size()) + " bytes (truncated or corrupt length)");
    s.payload_at = pos_;
    pos_ += static_cast<size_t>(s.payload_len);
    return s;
  }

  void Trailer() {
    Need(kTrailerBytes, "the 8-byte checksum trailer after " + std::to_string(count_) + " sections");
    if (Left() > kTrailerBytes)
      Fail(pos_ + kTrailerBytes, std::to_string(Left() - kTrailerBytes) + " unexpected trailing bytes",
           "expected the file to end with the checksum trailer at offset " + std::to_string(pos_));
    const size_t at = pos_;
    const uint64_t stored = U64();
    const uint64_t actual = Crc32c(b_.first(at));
    if (stored != actual)
      Fail(at, "checksum mismatch",
           "expected CRC32C " + Hex(stored, 8) + " (stored in the trailer), actual " + Hex(actual, 8) +
               " over bytes 0.." + std::to_string(at));
  }

  std::string_view NameOf(const SectionRef& s) const {
    return {reinterpret_cast<const char*>(b_.data() + s.name_at), s.name_len};
  }

  template <class Map>
  typename Map::mapped_type& Insert(Map& map, const SectionRef& s, std::map<std::string, size_t>& first_at) {
    std::string name(NameOf(s));
    auto [it, fresh] = map.try_emplace(name);
    if (!fresh)
      Fail(s.name_at, std::string("duplicate ") + KindName(s.kind) + " name " + Quote(name),
           "first at offset " + std::to_string(first_at[name]) + "; names are unique within a kind");
    first_at[name] = s.name_at;
    return it->second;
  }

  void Decode(const SectionRef& s, size_t i, CheckpointData& out) {
    const std::string_view name = NameOf(s);
    const std::string which = "section " + std::to_string(i) + " " + Quote(name);
    if (s.kind != kMetaSection && s.kind != kTensorSection && s.kind != kBlobSection)
      Fail(s.header_at, "unknown kind " + std::to_string(s.kind) + " of " + which,
           "expected 1 (meta), 2 (tensor) or 3 (blob)");
    if (size_t bad = Utf8Error(name); bad != std::string_view::npos)
      Fail(s.name_at + bad, "name of section " + std::to_string(i) + " " + Quote(name) + " is not UTF-8",
           "expected UTF-8 text");
    const uint8_t* payload = b_.data() + s.payload_at;
    const size_t len = static_cast<size_t>(s.payload_len);
    switch (s.kind) {
      case kMetaSection: {
        std::string_view value(reinterpret_cast<const char*>(payload), len);
        if (size_t bad = Utf8Error(value); bad != std::string_view::npos)
          Fail(s.payload_at + bad, "value of meta " + Quote(name) + " is not UTF-8", "expected UTF-8 text");
        Insert(out.meta, s, first_meta_) = std::string(value);
        break;
      }
      case kTensorSection: {
        if (len % sizeof(float) != 0)
          Fail(s.payload_at, "tensor " + Quote(name) + " has " + std::to_string(len) + " bytes",
               "expected a multiple of 4 (float32 values)");
        std::vector<float>& v = Insert(out.tensors, s, first_tensor_);
        v.resize(len / sizeof(float));
        if constexpr (std::endian::native == std::endian::little) {
          if (len) std::memcpy(v.data(), payload, len);
        } else {
          for (size_t k = 0; k < v.size(); ++k) v[k] = std::bit_cast<float>(LoadLE32(payload + 4 * k));
        }
        break;
      }
      case kBlobSection:
        Insert(out.blobs, s, first_blob_).assign(payload, payload + len);
        break;
    }
  }

  std::span<const uint8_t> b_;
  const std::string& name_;
  size_t pos_ = 0;
  uint32_t count_ = 0;
  std::map<std::string, size_t> first_meta_, first_tensor_, first_blob_;
};

}  // namespace

std::vector<uint8_t> SerializeCheckpoint(const CheckpointData& data) {
  std::vector<uint8_t> out;
  size_t total = kHeaderBytes + kTrailerBytes;
  for (const auto& [k, v] : data.meta) total += kSectionFixedBytes + k.size() + v.size();
  for (const auto& [k, v] : data.tensors) total += kSectionFixedBytes + k.size() + v.size() * sizeof(float);
  for (const auto& [k, v] : data.blobs) total += kSectionFixedBytes + k.size() + v.size();
  out.reserve(total);
  VectorSink sink{out};
  Encode(data, sink);
  return out;
}

CheckpointData ParseCheckpoint(std::span<const uint8_t> bytes, const std::string& name) {
  return Decoder(bytes, name).Run();
}

void WriteCheckpointFile(const std::string& path, const CheckpointData& data) {
  CheckData(data);  // before touching the disk
  WriteFileAtomic(path, "checkpoint", [&](AtomicFileSink& sink) { Encode(data, sink); });
}

CheckpointData ReadCheckpointFile(const std::string& path) {
  return ParseCheckpoint(ReadWholeFile(path, "checkpoint"), path);
}

const std::string& MetaEntry(const CheckpointData& d, const std::string& file, const std::string& key,
                             const std::string& hint) {
  auto it = d.meta.find(key);
  if (it == d.meta.end()) {
    Fail(ErrorCode::kDataLoss, file + ": checkpoint has no '" + key + "' entry" + (hint.empty() ? "" : ": " + hint));
  }
  return it->second;
}

int64_t MetaInteger(const CheckpointData& d, const std::string& file, const std::string& key, int64_t lo,
                    int64_t hi, const std::string& hint) {
  const std::string& v = MetaEntry(d, file, key, hint);
  char* end = nullptr;
  errno = 0;
  const long long x = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || errno != 0 || x < lo || x > hi) {
    Fail(ErrorCode::kDataLoss, file + ": checkpoint entry '" + key + "' is '" + v + "', not an integer in [" +
                                   std::to_string(lo) + ", " + std::to_string(hi) + "]");
  }
  return x;
}

}  // namespace dtrain::ckpt
