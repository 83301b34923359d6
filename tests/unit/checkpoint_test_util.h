// Helpers shared by the checkpoint-format tests (checkpoint_file_test,
// checkpoint_safetensors_test, checkpoint_safetensors_malformed_test).
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "common/error.h"
#include "worker/checkpoint/safetensors.h"

namespace dtrain::ckpt::test {

inline std::vector<uint8_t> ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

inline void WriteBytes(const std::string& path, const std::vector<uint8_t>& b) {
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}

inline std::vector<uint8_t> U64(uint64_t v) {
  std::vector<uint8_t> b(8);
  for (int i = 0; i < 8; ++i) b[i] = uint8_t(v >> (8 * i));
  return b;
}

// A safetensors file: u64 header length, the header text, `data_bytes` bytes of data.
inline std::vector<uint8_t> SafetensorsBytes(const std::string& header, size_t data_bytes = 0) {
  std::vector<uint8_t> b = U64(header.size());
  b.insert(b.end(), header.begin(), header.end());
  b.resize(b.size() + data_bytes, 0x5a);
  return b;
}

// A good safetensors file with every kind of tensor the writer emits.
inline SafetensorsFile Sample() {
  SafetensorsFile f;
  f.metadata = {{"format", "pt"}, {"note", "µ-batch ✓ \"quoted\"\n"}};
  f.tensors["conv1.weight"] = {
      "F32",
      {2, 1, 3},
      {1.0f, -2.5f, 3.25e-8f, std::numeric_limits<float>::max(), -0.0f, std::numeric_limits<float>::denorm_min()},
      {}};
  f.tensors["bn1.num_batches_tracked"] = {"I64", {}, {}, {123456789012}};
  f.tensors["fc.bias"] = {"F32", {}, {std::numeric_limits<float>::infinity()}, {}};
  f.tensors["empty"] = {"F32", {0, 4}, {}, {}};
  f.tensors["idx"] = {"I64", {3}, {}, {-1, std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()}};
  return f;
}

// Runs fn, expects Error(code), returns its message.
template <class F>
std::string ErrorMessage(F fn, ErrorCode code = ErrorCode::kDataLoss) {
  try {
    fn();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << ErrorCodeName(e.code()) << ": " << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no error thrown";
  return "";
}

// A fresh temporary directory per test, removed afterwards.
class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tmp_ = std::filesystem::temp_directory_path() /
           (std::string(::testing::UnitTest::GetInstance()->current_test_suite()->name()) + "_" +
            std::to_string(::getpid()));
    std::filesystem::remove_all(tmp_);
    std::filesystem::create_directories(tmp_);
  }
  void TearDown() override { std::filesystem::remove_all(tmp_); }
  std::string Tmp(const std::string& name) const { return (tmp_ / name).string(); }
  std::filesystem::path tmp_;
};

}  // namespace dtrain::ckpt::test
