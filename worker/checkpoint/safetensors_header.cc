#include "worker/checkpoint/safetensors_header.h"

#include <algorithm>
#include <cstdio>
#include <iterator>
#include <limits>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/little_endian.h"
#include "worker/checkpoint/safetensors.h"  // kSafetensorsMaxHeaderBytes

namespace dtrain::ckpt::safetensors_internal {
namespace {

using nlohmann::json;
constexpr size_t kMaxDepth = 128;  // serde_json's recursion limit, which bounds what the reference reads
constexpr size_t kMaxRank = 1024;
constexpr char kSupported[] = "F32, F16, BF16, F64, I64";
constexpr char kEntryForm[] = "{\"dtype\": \"F32\", \"shape\": [d0, ...], \"data_offsets\": [begin, end]}";

// A char iterator that records how far the JSON lexer has read, so SAX events
// can be placed in the file (nlohmann's SAX interface carries no positions).
struct CountingIter {
  using iterator_category = std::forward_iterator_tag;
  using value_type = char;
  using difference_type = std::ptrdiff_t;
  using pointer = const char*;
  using reference = const char&;
  const char* p = nullptr;
  const char** high = nullptr;
  reference operator*() const {
    if (p >= *high) *high = p + 1;
    return *p;
  }
  CountingIter& operator++() { return ++p, *this; }
  CountingIter operator++(int) { return {p++, high}; }
  bool operator==(const CountingIter& o) const { return p == o.p; }
};

struct RawTensor {
  std::string name, dtype;
  size_t at = 0, dtype_at = 0, shape_at = 0, offsets_at = 0;  // of the entry and its fields, in the header
  bool has_dtype = false, has_shape = false, has_offsets = false;
  std::vector<int64_t> shape;
  uint64_t offsets[2] = {0, 0};
  size_t n_offsets = 0;
};

enum class Kind { kNull, kBool, kNegative, kUnsigned, kFloat, kString, kArray, kObject };
const char* KindName(Kind k) {
  static const char* const names[] = {
      "null",     "a boolean", "a negative number", "an integer", "a fractional or out-of-range number",
      "a string", "an array",  "an object"};
  return names[static_cast<int>(k)];
}

// nlohmann SAX handler: the root object's entries become RawTensors and metadata.
class HeaderSax {
 public:
  HeaderSax(const uint8_t* h, uint64_t n, const std::string& name)
      : h_(reinterpret_cast<const char*>(h)), n_(n), name_(name), high_(h_) {}
  CountingIter begin() { return {h_, &high_}; }
  CountingIter end() { return {h_ + n_, &high_}; }
  std::vector<RawTensor> tensors;
  std::map<std::string, std::string> metadata;

  bool null() { return Value(Kind::kNull, Consumed() - 4); }
  bool boolean(bool v) { return Value(Kind::kBool, Consumed() - (v ? 4 : 5)); }
  bool number_integer(int64_t) { return Value(Kind::kNegative, NumberAt()); }  // written with a '-', "-0" too
  bool number_unsigned(uint64_t v) { return number_ = v, Value(Kind::kUnsigned, NumberAt()); }
  bool number_float(double, const std::string&) { return Value(Kind::kFloat, NumberAt()); }
  bool string(std::string& s) { return string_ = std::move(s), Value(Kind::kString, StringAt()); }
  bool binary(json::binary_t&) { return true; }  // not produced by JSON input
  bool start_object(size_t) { return Value(Kind::kObject, Consumed() - 1); }
  bool start_array(size_t) { return Value(Kind::kArray, Consumed() - 1); }
  bool end_object() { return Close(); }
  bool end_array() { return Close(); }
  bool key(std::string& k) {
    key_at_ = StringAt();
    key_ = std::move(k);
    Frame& f = frames_.back();
    auto [it, fresh] = f.keys.try_emplace(key_, key_at_);
    if (!fresh)
      Bad(key_at_,
          std::string("duplicate ") + (f.ctx == kRoot && key_ != kMetadataKey ? "tensor name " : "key ") + Quote(key_) +
              Where(f.ctx),
          "first at offset " + std::to_string(8 + it->second) + "; JSON object keys must be unique");
    return true;
  }
  bool parse_error(size_t position, const std::string&, const nlohmann::detail::exception& ex) {
    std::string what = ex.what();  // "[json.exception.parse_error.101] parse error at line 1, column 7: ..."
    size_t k = what.find("column ");
    if (k != std::string::npos) k = what.find(": ", k);
    if (k != std::string::npos) what = what.substr(k + 2);
    Bad(std::min<uint64_t>(position > 0 ? position - 1 : 0, n_), "header is not valid JSON", Quote(what, 200, ""));
  }

 private:
  enum Ctx { kRoot, kMeta, kEntry, kShape, kOffsets, kSkip };
  struct Frame {
    Ctx ctx;
    std::map<std::string, size_t> keys;  // objects: key -> header offset, for duplicates
  };

  // "<name>: <problem> at offset <n>: <expected>", n a file offset (header index + 8).
  [[noreturn]] void Bad(uint64_t at, const std::string& problem, const std::string& expected) const {
    Fail(ErrorCode::kDataLoss, name_ + ": " + problem + " at offset " + std::to_string(8 + at) + ": " + expected);
  }
  size_t Consumed() const { return static_cast<size_t>(high_ - h_); }
  // The opening quote of the string token just read (its closing quote is the last byte read).
  size_t StringAt() const {
    size_t j = Consumed() - 1;
    for (;;) {
      if (h_[--j] != '"') continue;
      size_t slashes = 0;  // h_[0] is '{', so this stops inside the header
      while (h_[j - 1 - slashes] == '\\') ++slashes;
      if (slashes % 2 == 0) return j;
    }
  }
  // The first byte of the number just read (the lexer reads one byte past it, unless at the end).
  size_t NumberAt() const {
    auto in_number = [](char c) {
      return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
    };
    size_t j = Consumed();
    if (!in_number(h_[j - 1])) --j;
    while (j > 0 && in_number(h_[j - 1])) --j;
    return j;
  }
  std::string Where(Ctx c) const {
    if (c == kMeta) return " in \"__metadata__\"";
    if (c == kRoot || tensors.empty()) return "";
    return " in the entry of tensor " + Quote(tensors.back().name);
  }
  // what() names the value; called only on failure (this runs for every value).
  template <class What>
  void Expect(bool ok, Kind k, size_t at, What what, const std::string& expected) const {
    if (!ok) Bad(at, what() + " is " + KindName(k), "expected " + expected);
  }
  bool Push(Ctx c, size_t at) {
    if (frames_.size() >= kMaxDepth)
      Bad(at, "JSON nested deeper than " + std::to_string(kMaxDepth) + " levels",
          "at most " + std::to_string(kMaxDepth) + " (a safetensors header needs 3)");
    frames_.push_back({c, {}});
    return true;
  }
  // Every value: a scalar, or the start of an array or object.
  bool Value(Kind k, size_t at) {
    const bool open = k == Kind::kArray || k == Kind::kObject;
    if (frames_.empty()) return Push(kRoot, at);  // an object: the caller checked the '{'
    switch (frames_.back().ctx) {
      case kRoot:
        if (key_ == kMetadataKey) {
          if (k == Kind::kNull) return true;  // no metadata, as the reference reads it
          Expect(
              k == Kind::kObject, k, at, [] { return std::string("\"__metadata__\""); }, "an object of string values");
          return Push(kMeta, at);
        }
        if (key_.empty()) Bad(key_at_, "empty tensor name", "tensor names are non-empty strings");
        Expect(
            k == Kind::kObject, k, at, [&] { return "the entry of tensor " + Quote(key_); }, kEntryForm);
        tensors.emplace_back().name = key_;
        tensors.back().at = at;
        return Push(kEntry, at);
      case kMeta:
        Expect(
            k == Kind::kString, k, at, [&] { return "\"__metadata__\" value of " + Quote(key_); }, "a string");
        metadata[key_] = std::move(string_);
        return true;
      case kEntry: {
        RawTensor& t = tensors.back();
        auto field = [&] { return "\"" + key_ + "\" of tensor " + Quote(t.name); };
        if (key_ == "dtype") {
          Expect(k == Kind::kString, k, at, field, "a string such as \"F32\"");
          t.dtype = std::move(string_), t.dtype_at = at, t.has_dtype = true;
        } else if (key_ == "shape" || key_ == "data_offsets") {
          const bool shape = key_ == "shape";
          Expect(k == Kind::kArray, k, at, field, shape ? "an array of non-negative integers" : "[begin, end]");
          (shape ? t.has_shape : t.has_offsets) = true;
          (shape ? t.shape_at : t.offsets_at) = at;
          return Push(shape ? kShape : kOffsets, at);
        }
        return open ? Push(kSkip, at) : true;  // another field: ignored, like the reference does
      }
      case kShape: {
        RawTensor& t = tensors.back();
        auto what = [&] { return "dimension " + std::to_string(t.shape.size()) + " of tensor " + Quote(t.name); };
        Expect(k == Kind::kUnsigned, k, at, what, "a non-negative integer");
        if (number_ > uint64_t(std::numeric_limits<int64_t>::max()))
          Bad(at, what() + " (" + std::to_string(number_) + ") overflows", "dimensions are at most 2^63-1");
        if (t.shape.size() == kMaxRank)
          Bad(at, "tensor " + Quote(t.name) + " has too many dimensions", "at most " + std::to_string(kMaxRank));
        t.shape.push_back(int64_t(number_));
        return true;
      }
      case kOffsets: {
        RawTensor& t = tensors.back();
        auto what = [&] { return "\"data_offsets\" of tensor " + Quote(t.name); };
        Expect(
            k == Kind::kUnsigned, k, at, [&] { return "an element of " + what(); }, "a non-negative integer");
        if (t.n_offsets == 2) Bad(at, what() + " has more than 2 elements", "expected [begin, end]");
        t.offsets[t.n_offsets++] = number_;
        return true;
      }
      case kSkip:
        return open ? Push(kSkip, at) : true;
    }
    return true;
  }
  bool Close() {
    const Ctx c = frames_.back().ctx;
    if (c == kEntry) {
      const RawTensor& t = tensors.back();
      auto need = [&](bool has, const char* field) {
        if (!has)
          Bad(t.at, "tensor " + Quote(t.name) + " has no \"" + field + "\"", std::string("expected ") + kEntryForm);
      };
      need(t.has_dtype, "dtype"), need(t.has_shape, "shape"), need(t.has_offsets, "data_offsets");
    }
    if (c == kOffsets && tensors.back().n_offsets != 2)
      Bad(tensors.back().offsets_at,
          "\"data_offsets\" of tensor " + Quote(tensors.back().name) + " has " +
              std::to_string(tensors.back().n_offsets) + " of 2 elements",
          "expected [begin, end]");
    frames_.pop_back();
    return true;
  }

  const char* h_;
  uint64_t n_;
  const std::string& name_;
  const char* high_;  // one past the furthest byte the lexer read
  std::vector<Frame> frames_;
  std::string key_, string_;
  size_t key_at_ = 0;
  uint64_t number_ = 0;
};

}  // namespace

uint64_t DtypeBytes(std::string_view d) {
  if (d == "F32") return 4;
  if (d == "F16" || d == "BF16") return 2;
  if (d == "F64" || d == "I64") return 8;
  return 0;
}

std::string Quote(std::string_view s, size_t max_bytes, const char* quote) {
  std::string out = quote;
  for (size_t i = 0; i < s.size() && i < max_bytes; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && (c != '\'' || !*quote) && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out + (s.size() > max_bytes ? "..." : "") + quote;
}

std::string ShapeText(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

int64_t CheckedBytes(const std::vector<int64_t>& shape, int64_t unit) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0 || (d != 0 && n > std::numeric_limits<int64_t>::max() / d)) return -1;
    n *= d;
  }
  return n > std::numeric_limits<int64_t>::max() / unit ? -1 : n * unit;
}

SafetensorsHeader ParseSafetensorsHeader(std::span<const uint8_t> b, const std::string& name) {
  auto bad = [&](uint64_t at, const std::string& problem, const std::string& expected) {
    Fail(ErrorCode::kDataLoss, name + ": " + problem + " at offset " + std::to_string(at) + ": " + expected);
  };
  const std::string size = std::to_string(b.size());
  if (b.size() < 8)
    bad(0, "truncated: the file has " + size + " bytes", "expected the 8-byte little-endian header length");
  const uint64_t n = LoadLE64(b.data());
  if (n > kSafetensorsMaxHeaderBytes)
    bad(0, "header length " + std::to_string(n) + " is too large",
        "at most " + std::to_string(kSafetensorsMaxHeaderBytes) + " bytes");
  if (n > b.size() - 8)
    bad(0, "header length " + std::to_string(n) + " is larger than the file",
        "the file has " + size + " bytes, so at most " + std::to_string(b.size() - 8) + " (truncated or corrupt)");
  if (n == 0 || b[8] != '{') bad(8, "the header does not start with '{'", "expected a JSON object");
  HeaderSax sax(b.data() + 8, n, name);
  json::sax_parse(sax.begin(), sax.end(), &sax);  // throws Error on any problem

  const uint64_t data_at = 8 + n, data_size = b.size() - data_at;
  for (const RawTensor& t : sax.tensors) {
    const std::string which = "tensor " + Quote(t.name);
    const uint64_t unit = DtypeBytes(t.dtype);
    const int64_t bytes = CheckedBytes(t.shape, unit ? int64_t(unit) : 1);
    if (bytes < 0)
      bad(t.shape_at + 8, "shape " + ShapeText(t.shape) + " of " + which + " overflows",
          "numel x dtype size must be below 2^63");
    const uint64_t begin = t.offsets[0], end = t.offsets[1];
    const std::string offsets = "data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "] of " + which;
    if (begin > end) bad(t.offsets_at + 8, offsets + " begin after they end", "expected begin <= end");
    if (end > data_size)
      bad(t.offsets_at + 8, offsets + " end past the data",
          "the data buffer has " + std::to_string(data_size) + " bytes (file offsets " + std::to_string(data_at) +
              ".." + size + ")");
    if (unit && end - begin != uint64_t(bytes))
      bad(t.offsets_at + 8, offsets + " span " + std::to_string(end - begin) + " bytes",
          "expected " + std::to_string(bytes) + " (" + std::to_string(bytes / int64_t(unit)) + " x " +
              std::to_string(unit) + "-byte " + t.dtype + " for shape " + ShapeText(t.shape) + ")");
  }
  // The tensors must cover the data buffer exactly, as the reference requires.
  std::vector<const RawTensor*> order;
  for (const RawTensor& t : sax.tensors) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](const RawTensor* x, const RawTensor* y) {
    return std::pair(x->offsets[0], x->offsets[1]) < std::pair(y->offsets[0], y->offsets[1]);
  });
  uint64_t cursor = 0;
  const RawTensor* prev = nullptr;
  for (const RawTensor* t : order) {
    const std::string range =
        Quote(t->name) + " [" + std::to_string(t->offsets[0]) + ", " + std::to_string(t->offsets[1]) + "]";
    if (t->offsets[0] < cursor)
      bad(data_at + t->offsets[0],
          "tensor " + range + " overlaps tensor " + Quote(prev->name) + " [" + std::to_string(prev->offsets[0]) + ", " +
              std::to_string(cursor) + "]",
          "tensors occupy disjoint byte ranges of the data buffer");
    if (t->offsets[0] > cursor)
      bad(data_at + cursor, "a hole of " + std::to_string(t->offsets[0] - cursor) + " bytes in the data buffer",
          "the tensors must cover the data buffer without gaps; the next is tensor " + range);
    cursor = t->offsets[1], prev = t;
  }
  if (cursor < data_size)
    bad(data_at + cursor,
        std::to_string(data_size - cursor) + " trailing bytes after " +
            (order.empty() ? "the header (there are no tensors)" : "the last tensor's data"),
        "the file ends where the tensors end (" + std::to_string(data_at + cursor) + " bytes)");
  for (const RawTensor& t : sax.tensors)
    if (!DtypeBytes(t.dtype))
      Fail(ErrorCode::kInvalidArgument, name + ": tensor " + Quote(t.name) + " has unsupported dtype " +
                                            Quote(t.dtype) + " at offset " + std::to_string(t.dtype_at + 8) +
                                            ": supported dtypes: " + kSupported);

  SafetensorsHeader out;
  out.metadata = std::move(sax.metadata);
  out.data_at = data_at;
  out.tensors.reserve(sax.tensors.size());
  for (RawTensor& t : sax.tensors)
    out.tensors.push_back({std::move(t.name), std::move(t.dtype), std::move(t.shape), t.offsets[0], t.offsets[1]});
  return out;
}

}  // namespace dtrain::ckpt::safetensors_internal
