#include "worker/checkpoint/safetensors.h"

#include <bit>
#include <cstring>
#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/little_endian.h"
#include "worker/checkpoint/safetensors_header.h"

namespace dtrain::ckpt {
namespace {

using nlohmann::json;
using safetensors_internal::CheckedBytes;
using safetensors_internal::DtypeBytes;
using safetensors_internal::kMetadataKey;
using safetensors_internal::Quote;
using safetensors_internal::ShapeText;

float HalfToFloat(uint16_t h) {
  const uint32_t sign = uint32_t{h & 0x8000u} << 16, exp = (h >> 10) & 0x1f;
  uint32_t man = h & 0x3ffu;
  if (exp == 0x1f) return std::bit_cast<float>(sign | 0x7f800000u | man << 13);  // inf, NaN (payload kept)
  if (exp != 0) return std::bit_cast<float>(sign | (exp + 112) << 23 | man << 13);
  if (man == 0) return std::bit_cast<float>(sign);
  uint32_t e = 113;  // subnormal: normalize, 2^-14 x 0.man
  while (!(man & 0x400u)) man <<= 1, --e;
  return std::bit_cast<float>(sign | e << 23 | (man & 0x3ffu) << 13);
}

}  // namespace

int64_t SafeTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::vector<uint8_t> SerializeSafetensors(const SafetensorsFile& f) {
  auto str = [](const std::string& s, const std::string& what) {
    try {
      return json(s).dump();
    } catch (const json::exception&) {
      Fail(ErrorCode::kInvalidArgument, "safetensors " + what + " " + Quote(s) + " is not UTF-8");
    }
  };
  std::string h = "{";
  if (!f.metadata.empty()) {
    h += "\"__metadata__\":{";
    for (const auto& [k, v] : f.metadata)
      h += str(k, "metadata key") + ":" + str(v, "value of metadata " + Quote(k)) + ",";
    h.back() = '}';
    h += ",";
  }
  uint64_t offset = 0;
  for (const auto& [name, t] : f.tensors) {
    const std::string which = "safetensors tensor " + Quote(name);
    if (name.empty() || name == kMetadataKey)
      Fail(ErrorCode::kInvalidArgument, which + ": tensor names are non-empty and not \"__metadata__\"");
    const bool is_f32 = t.dtype == "F32";
    if (!is_f32 && t.dtype != "I64")
      Fail(ErrorCode::kInvalidArgument, which + " has dtype " + Quote(t.dtype) + ": the writer supports F32 and I64");
    const int64_t bytes = CheckedBytes(t.shape, 8);
    if (bytes < 0)
      Fail(ErrorCode::kInvalidArgument,
           which + " has shape " + ShapeText(t.shape) + ": dimensions are non-negative and numel x 8 is below 2^63");
    const size_t have = is_f32 ? t.f32.size() : t.i64.size(), other = is_f32 ? t.i64.size() : t.f32.size();
    if (have != uint64_t(bytes / 8) || other != 0)
      Fail(ErrorCode::kInvalidArgument,
           which + " (" + t.dtype + ", shape " + ShapeText(t.shape) + ") has " + std::to_string(t.f32.size()) +
               " f32 and " + std::to_string(t.i64.size()) + " i64 values: expected " + std::to_string(bytes / 8) +
               " (the product of the shape) in " + (is_f32 ? "f32 and none in i64" : "i64 and none in f32"));
    const uint64_t end = offset + uint64_t(bytes / 8) * (is_f32 ? 4 : 8);
    h += str(name, "tensor name") + ":{\"dtype\":\"" + t.dtype + "\",\"shape\":" + json(t.shape).dump() +
         ",\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(end) + "]},";
    offset = end;
  }
  if (h.size() > 1) h.pop_back();
  h += "}";
  h.append((8 - h.size() % 8) % 8, ' ');  // the data starts 8-byte aligned

  std::vector<uint8_t> out(8 + h.size() + offset);
  StoreLE64(out.data(), h.size());
  std::memcpy(out.data() + 8, h.data(), h.size());
  uint8_t* p = out.data() + 8 + h.size();
  for (const auto& [name, t] : f.tensors) {
    for (float v : t.f32) StoreLE32(p, std::bit_cast<uint32_t>(v)), p += 4;
    for (int64_t v : t.i64) StoreLE64(p, uint64_t(v)), p += 8;
  }
  return out;
}

SafetensorsFile ParseSafetensors(std::span<const uint8_t> b, const std::string& name) {
  safetensors_internal::SafetensorsHeader header = safetensors_internal::ParseSafetensorsHeader(b, name);
  SafetensorsFile out;
  out.metadata = std::move(header.metadata);
  for (safetensors_internal::HeaderTensor& t : header.tensors) {
    SafeTensor& s = out.tensors[t.name];
    const uint8_t* p = b.data() + header.data_at + t.begin;
    const uint64_t unit = DtypeBytes(t.dtype);
    const size_t count = (t.end - t.begin) / unit;
    auto fill = [&](auto load) {
      s.f32.resize(count);
      for (size_t i = 0; i < count; ++i) s.f32[i] = load(p + unit * i);
    };
    if (t.dtype == "I64") {
      s.i64.resize(count);
      for (size_t i = 0; i < count; ++i) s.i64[i] = int64_t(LoadLE64(p + 8 * i));
    } else if (t.dtype == "F32") {
      fill([](const uint8_t* q) { return std::bit_cast<float>(LoadLE32(q)); });
    } else if (t.dtype == "F64") {
      fill([](const uint8_t* q) { return static_cast<float>(std::bit_cast<double>(LoadLE64(q))); });
    } else if (t.dtype == "F16") {
      fill([](const uint8_t* q) { return HalfToFloat(uint16_t(q[0] | q[1] << 8)); });
    } else {  // BF16: the top half of a float32
      fill([](const uint8_t* q) { return std::bit_cast<float>(uint32_t(q[0] | q[1] << 8) << 16); });
    }
    s.dtype = std::move(t.dtype);
    s.shape = std::move(t.shape);
  }
  return out;
}

void WriteSafetensorsFile(const std::string& path, const SafetensorsFile& f) {
  const std::vector<uint8_t> bytes = SerializeSafetensors(f);  // checks f before touching the disk
  WriteFileAtomic(path, bytes, "safetensors file");
}

SafetensorsFile ReadSafetensorsFile(const std::string& path) {
  return ParseSafetensors(ReadWholeFile(path, "safetensors file"), path);
}

}  // namespace dtrain::ckpt
