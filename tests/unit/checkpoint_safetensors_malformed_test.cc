// safetensors files the reader refuses: every kind of malformed file (and
// every truncation of a good one) is Error(kDataLoss) naming the file and the
// byte offset; a well-formed file with an unsupported dtype is
// Error(kInvalidArgument) naming the tensor and the dtypes it supports.
// Valid files and writing: checkpoint_safetensors_test.cc.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <limits>

#include "common/error.h"
#include "tests/unit/checkpoint_test_util.h"
#include "worker/checkpoint/safetensors.h"

namespace dtrain::ckpt {
namespace {

namespace fs = std::filesystem;
using test::ErrorMessage;
using test::U64;
using test::WriteBytes;
std::vector<uint8_t> File(const std::string& header, size_t data = 0) { return test::SafetensorsBytes(header, data); }
using test::Sample;

class SafetensorsTest : public test::TempDirTest {};


// ---- malformed files: Error(kDataLoss) "<path>: <problem> at offset <n>: <expected>" ----

struct BadFile {
  std::string label;
  std::vector<uint8_t> bytes;
  std::string problem;  // a part of the message
  uint64_t offset;      // the file offset it names
};
void PrintTo(const BadFile& c, std::ostream* os) { *os << c.label; }

std::string Entry(const std::string& dtype, const std::string& shape, const std::string& offsets) {
  return "{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":" + offsets + "}";
}
// The file offset of the nth occurrence of `needle` in the header, plus `delta`.
uint64_t At(const std::string& header, const std::string& needle, int nth = 0, int64_t delta = 0) {
  size_t at = header.find(needle);
  while (nth-- > 0) at = header.find(needle, at + 1);
  EXPECT_NE(at, std::string::npos) << needle;
  return 8 + at + delta;
}

std::vector<BadFile> BadFiles() {
  std::vector<BadFile> v;
  auto add = [&](std::string label, std::string header, size_t data, std::string problem, uint64_t offset) {
    v.push_back({std::move(label), File(header, data), std::move(problem), offset});
  };
  const std::string f4 = Entry("F32", "[1]", "[0,4]");
  v.push_back({"too_short", {1, 2, 3}, "truncated: the file has 3 bytes", 0});
  std::vector<uint8_t> b = U64(1000);
  b.insert(b.end(), {'{', '}'});
  v.push_back({"header_longer_than_file", b, "header length 1000 is larger than the file", 0});
  b = U64(100'000'001);
  b.insert(b.end(), {'{', '}'});
  v.push_back({"header_over_100MB", b, "header length 100000001 is too large", 0});
  add("empty_header", "", 0, "the header does not start with '{'", 8);
  add("not_an_object", "[1]", 0, "the header does not start with '{'", 8);
  std::string h = "{\"a\":}";
  add("invalid_json", h, 0, "header is not valid JSON", At(h, "}"));
  h = "{\"a\xff\":" + f4 + "}";
  add("not_utf8", h, 4, "header is not valid JSON", At(h, "\xff"));
  h = "{} x";
  add("text_after_the_object", h, 0, "header is not valid JSON", At(h, "x"));
  h = "{\"a\":" + f4 + ",\"a\":" + f4 + "}";
  add("duplicate_tensor_name", h, 4, "duplicate tensor name 'a'", At(h, "\"a\"", 1));
  h = R"({"q\\\"\\":)" + f4 + R"(, "q\\\"\\" :)" + f4 + "}";  // the name q\"\ (escaped)
  add("duplicate_escaped_name", h, 4, "duplicate tensor name 'q\\x5c\"\\x5c'", At(h, "\"q", 1));
  h = "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
  add("duplicate_field", h, 4, "duplicate key 'dtype' in the entry of tensor 'a'", At(h, "\"dtype\"", 1));
  h = "{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}";
  add("duplicate_metadata_key", h, 0, "duplicate key 'k' in \"__metadata__\"", At(h, "\"k\"", 1));
  h = "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}";
  add("missing_dtype", h, 4, "tensor 'a' has no \"dtype\"", At(h, "{", 1));
  h = "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}";
  add("missing_shape", h, 4, "tensor 'a' has no \"shape\"", At(h, "{", 1));
  h = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}";
  add("missing_data_offsets", h, 4, "tensor 'a' has no \"data_offsets\"", At(h, "{", 1));
  h = "{\"a\":[1]}";
  add("entry_not_object", h, 0, "the entry of tensor 'a' is an array", At(h, "["));
  h = "{\"a\":{\"dtype\":5,\"shape\":[1],\"data_offsets\":[0,4]}}";
  add("dtype_not_string", h, 4, "\"dtype\" of tensor 'a' is an integer", At(h, "5"));
  h = "{\"a\":{\"dtype\":\"F32\",\"shape\":\"1\",\"data_offsets\":[0,4]}}";
  add("shape_not_array", h, 4, "\"shape\" of tensor 'a' is a string", At(h, "\"1\""));
  h = "{\"a\":" + Entry("F32", "[1.5]", "[0,4]") + "}";
  add("dim_not_integer", h, 4, "dimension 0 of tensor 'a' is a fractional", At(h, "1.5"));
  h = "{\"a\":" + Entry("F32", "[1, 2E+3 ]", "[0,4]") + "}";
  add("dim_with_exponent", h, 4, "dimension 1 of tensor 'a' is a fractional", At(h, "2E"));
  h = "{\"a\":" + Entry("F32", "[1,-2]", "[0,4]") + "}";
  add("negative_dim", h, 4, "dimension 1 of tensor 'a' is a negative number", At(h, "-2"));
  h = "{\"a\":" + Entry("F32", "[-0]", "[0,0]") + "}";  // not an unsigned integer for the reference either
  add("minus_zero_dim", h, 0, "dimension 0 of tensor 'a' is a negative number", At(h, "-0"));
  h = "{\"a\":" + Entry("F32", "[9223372036854775808]", "[0,4]") + "}";
  add("dim_overflow", h, 4, "dimension 0 of tensor 'a' (9223372036854775808) overflows", At(h, "9223"));
  h = "{\"a\":" + Entry("F32", "[4294967296,1073741824]", "[0,0]") + "}";
  add("numel_overflow", h, 0, "shape [4294967296, 1073741824] of tensor 'a' overflows", At(h, "[4294"));
  h = "{\"a\":" + Entry("F32", "[1]", "[0]") + "}";
  add("one_offset", h, 4, "\"data_offsets\" of tensor 'a' has 1 of 2 elements", At(h, "[0]"));
  h = "{\"a\":" + Entry("F32", "[1]", "[0,4,8]") + "}";
  add("three_offsets", h, 4, "\"data_offsets\" of tensor 'a' has more than 2", At(h, "8]"));
  h = "{\"a\":" + Entry("F32", "[1]", "[\"0\",4]") + "}";
  add("offset_not_integer", h, 4, "an element of \"data_offsets\" of tensor 'a' is a string", At(h, "\"0\""));
  h = "{\"a\":" + Entry("F32", "[1]", "[8,4]") + "}";
  add("begin_after_end", h, 8, "data_offsets [8, 4] of tensor 'a' begin after they end", At(h, "[8,4]"));
  h = "{\"a\":" + Entry("F32", "[2]", "[0,8]") + "}";
  add("end_past_data", h, 4, "data_offsets [0, 8] of tensor 'a' end past the data", At(h, "[0,8]"));
  h = "{\"a\":" + Entry("F32", "[2]", "[0,4]") + "}";
  add("length_not_numel_x_size", h, 4, "data_offsets [0, 4] of tensor 'a' span 4 bytes", At(h, "[0,4]"));
  h = "{\"a\":" + Entry("F32", "[2]", "[0,8]") + ",\"b\":" + Entry("F32", "[2]", "[4,12]") + "}";
  add("overlap", h, 12, "tensor 'b' [4, 12] overlaps tensor 'a' [0, 8]", 8 + h.size() + 4);
  h = "{\"a\":" + f4 + ",\"b\":" + Entry("F32", "[1]", "[8,12]") + "}";
  add("hole", h, 12, "a hole of 4 bytes in the data buffer", 8 + h.size() + 4);
  h = "{\"a\":" + f4 + "}";
  add("trailing_bytes", h, 6, "2 trailing bytes after the last tensor's data", 8 + h.size() + 4);
  add("data_without_tensors", "{}", 3, "3 trailing bytes after the header (there are no tensors)", 8 + 2);
  h = "{\"__metadata__\":{\"k\":1}}";
  add("metadata_value_not_string", h, 0, "\"__metadata__\" value of 'k' is an integer", At(h, "1"));
  h = "{\"__metadata__\":[\"x\"]}";
  add("metadata_not_object", h, 0, "\"__metadata__\" is an array", At(h, "["));
  h = "{\"\":" + f4 + "}";
  add("empty_tensor_name", h, 4, "empty tensor name", At(h, "\"\""));
  h = "{\"a\":{\"x\":" + std::string(200, '[') + std::string(200, ']') + "," + f4.substr(1) + "}";
  add("nested_too_deep", h, 4, "JSON nested deeper than 128 levels", At(h, "[", 0, 126));
  return v;
}

class MalformedTest : public SafetensorsTest, public ::testing::WithParamInterface<BadFile> {};

TEST_P(MalformedTest, IsDataLossNamingThePathAndOffset) {
  const BadFile& c = GetParam();
  const std::string path = Tmp(c.label + ".safetensors");
  WriteBytes(path, c.bytes);
  const std::string msg = ErrorMessage([&] { ReadSafetensorsFile(path); }, ErrorCode::kDataLoss);
  EXPECT_EQ(msg.rfind(path + ": ", 0), 0u) << msg;
  EXPECT_NE(msg.find(c.problem), std::string::npos) << msg;
  EXPECT_NE(msg.find(" at offset " + std::to_string(c.offset) + ": "), std::string::npos) << msg;
}

INSTANTIATE_TEST_SUITE_P(Safetensors, MalformedTest, ::testing::ValuesIn(BadFiles()),
                         [](const auto& info) { return info.param.label; });

TEST_F(SafetensorsTest, EveryTruncationIsDataLoss) {
  const std::vector<uint8_t> good = SerializeSafetensors(Sample());
  for (size_t n = 0; n < good.size(); ++n) {
    SCOPED_TRACE("first " + std::to_string(n) + " bytes");
    const std::string msg =
        ErrorMessage([&] { ParseSafetensors(std::span(good).first(n), "cut.safetensors"); }, ErrorCode::kDataLoss);
    EXPECT_EQ(msg.rfind("cut.safetensors: ", 0), 0u) << msg;
    EXPECT_NE(msg.find(" at offset "), std::string::npos) << msg;
  }
}

TEST_F(SafetensorsTest, UnsupportedDtypeNamesTensorAndDtype) {
  const std::string h = "{\"a\":" + Entry("F32", "[1]", "[0,4]") + ",\"m\":" + Entry("U8", "[3]", "[4,7]") + "}";
  const std::string path = Tmp("u8.safetensors");
  WriteBytes(path, File(h, 7));
  const std::string msg = ErrorMessage([&] { ReadSafetensorsFile(path); }, ErrorCode::kInvalidArgument);
  EXPECT_EQ(msg, path + ": tensor 'm' has unsupported dtype 'U8' at offset " + std::to_string(At(h, "\"U8\"")) +
                     ": supported dtypes: F32, F16, BF16, F64, I64");
  // A damaged file is data loss first, whatever its dtypes.
  ErrorMessage([&] { ParseSafetensors(File(h, 8), "x"); }, ErrorCode::kDataLoss);
}

}  // namespace
}  // namespace dtrain::ckpt
