// IDX reading: the real Fashion-MNIST files, plain copies, and damaged copies
// (truncated, corrupt, bad header, bad labels) written to a temporary folder.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include "common/error.h"
#include "worker/data/dataset.h"
#include "worker/data/idx_reader.h"

namespace dtrain::data {
namespace {

namespace fs = std::filesystem;
const std::string kDir = "/usr/share/datasets/fashion-mnist";

std::vector<uint8_t> ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}
void WriteBytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}
// Decompresses with gzread (independent of the reader under test); returns
// every byte zlib delivers, stopping at the first error.
std::vector<uint8_t> Gunzip(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  std::vector<uint8_t> out;
  uint8_t buf[4096];
  int n;
  while ((n = gzread(f, buf, sizeof buf)) > 0) out.insert(out.end(), buf, buf + n);
  gzclose(f);
  return out;
}
void WriteGzip(const std::string& path, const std::vector<uint8_t>& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(f);
}
std::vector<uint8_t> IdxHeader(uint8_t type, std::vector<uint32_t> dims) {
  std::vector<uint8_t> h = {0, 0, type, static_cast<uint8_t>(dims.size())};
  for (uint32_t d : dims) h.insert(h.end(), {uint8_t(d >> 24), uint8_t(d >> 16), uint8_t(d >> 8), uint8_t(d)});
  return h;
}

// Runs fn, expects Error(kDataLoss), returns its message.
template <typename F>
std::string DataLossMessage(F fn) {
  try {
    fn();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDataLoss) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no error thrown";
  return "";
}

class IdxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(kDir + "/train-images-idx3-ubyte.gz")) GTEST_SKIP() << "dataset-fashion-mnist not installed";
    tmp_ = fs::temp_directory_path() / ("dtrain_data_idx_" + std::to_string(::getpid()));
    fs::create_directories(tmp_);
  }
  void TearDown() override {
    if (!tmp_.empty()) fs::remove_all(tmp_);
  }
  std::string Tmp(const std::string& name) { return (tmp_ / name).string(); }
  fs::path tmp_;
};

TEST_F(IdxTest, ReadsRealFiles) {
  IdxArray train_images = ReadIdx(kDir + "/train-images-idx3-ubyte.gz", 3);
  IdxArray train_labels = ReadIdx(kDir + "/train-labels-idx1-ubyte.gz", 1);
  IdxArray test_images = ReadIdx(kDir + "/t10k-images-idx3-ubyte.gz", 3);
  IdxArray test_labels = ReadIdx(kDir + "/t10k-labels-idx1-ubyte.gz", 1);
  EXPECT_EQ(train_images.dims, (std::vector<int64_t>{60000, 28, 28}));
  EXPECT_EQ(train_labels.dims, (std::vector<int64_t>{60000}));
  EXPECT_EQ(test_images.dims, (std::vector<int64_t>{10000, 28, 28}));
  EXPECT_EQ(test_labels.dims, (std::vector<int64_t>{10000}));
  EXPECT_EQ(train_images.data.size(), 60000u * 784);
  std::vector<int> per_class(10, 0);
  for (uint8_t l : train_labels.data) {
    ASSERT_LT(l, 10);
    ++per_class[l];
  }
  for (int c = 0; c < 10; ++c) EXPECT_EQ(per_class[c], 6000) << "class " << c;  // Fashion-MNIST is balanced
  // The payload is the decompressed file after its 16-byte header.
  std::vector<uint8_t> raw = Gunzip(kDir + "/t10k-images-idx3-ubyte.gz");
  ASSERT_EQ(raw.size(), 16u + 10000 * 784);
  EXPECT_TRUE(std::equal(test_images.data.begin(), test_images.data.end(), raw.begin() + 16));
}

TEST_F(IdxTest, PlainFileReadsLikeGzip) {
  WriteBytes(Tmp("labels"), Gunzip(kDir + "/t10k-labels-idx1-ubyte.gz"));
  EXPECT_EQ(ReadIdx(Tmp("labels"), 1).data, ReadIdx(kDir + "/t10k-labels-idx1-ubyte.gz", 1).data);
}

TEST_F(IdxTest, LoadFashionMnistWithLimits) {
  TrainTest full = LoadFashionMnist(kDir, 0, 0);
  EXPECT_EQ(full.train.size, 60000);
  EXPECT_EQ(full.test.size, 10000);
  EXPECT_EQ(full.train.channels, 1);
  EXPECT_EQ(full.train.height, 28);
  EXPECT_EQ(full.train.width, 28);
  EXPECT_EQ(full.train.classes, 10);
  // Published Fashion-MNIST training statistics: mean 0.2860, std 0.3530.
  EXPECT_NEAR(full.train.mean[0], 0.2860, 5e-4);
  EXPECT_NEAR(full.train.std[0], 0.3530, 5e-4);
  EXPECT_EQ(full.test.mean, full.train.mean);
  TrainTest small = LoadFashionMnist(kDir, 1000, 300);
  EXPECT_EQ(small.train.size, 1000);
  EXPECT_EQ(small.test.size, 300);
  EXPECT_EQ(small.train.images.size(), 1000u * 784);
  EXPECT_TRUE(std::equal(small.train.images.begin(), small.train.images.end(), full.train.images.begin()));
  EXPECT_TRUE(std::equal(small.test.labels.begin(), small.test.labels.end(), full.test.labels.begin()));
}

TEST_F(IdxTest, TruncatedPayloadNamesFileAndOffset) {
  std::vector<uint8_t> raw = Gunzip(kDir + "/train-labels-idx1-ubyte.gz");
  raw.resize(8 + 1234);  // header + 1234 of 60000 labels, recompressed as a valid gzip
  const std::string path = Tmp("train-labels-idx1-ubyte.gz");
  WriteGzip(path, raw);
  std::string msg = DataLossMessage([&] { ReadIdx(path, 1); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("truncated at offset 1242 of the decompressed stream"), std::string::npos) << msg;
  EXPECT_NE(msg.find("expected 60000 bytes of labels"), std::string::npos) << msg;
}

TEST_F(IdxTest, CutGzipNamesFileAndOffset) {
  std::vector<uint8_t> gz = ReadBytes(kDir + "/t10k-images-idx3-ubyte.gz");
  gz.resize(gz.size() / 3);
  const std::string path = Tmp("t10k-images-idx3-ubyte.gz");
  WriteBytes(path, gz);
  const size_t available = Gunzip(path).size();  // what zlib can recover
  ASSERT_GT(available, 16u);
  std::string msg = DataLossMessage([&] { ReadIdx(path, 3); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("truncated at offset " + std::to_string(available) + " of the decompressed stream"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("expected 7840000 bytes of pixels"), std::string::npos) << msg;
}

TEST_F(IdxTest, CorruptGzipNamesFileAndOffset) {
  std::vector<uint8_t> gz = ReadBytes(kDir + "/t10k-labels-idx1-ubyte.gz");
  for (size_t i = gz.size() / 2; i < gz.size() / 2 + 64; ++i) gz[i] ^= 0xA5;
  const std::string path = Tmp("t10k-labels-idx1-ubyte.gz");
  WriteBytes(path, gz);
  std::string msg = DataLossMessage([&] { ReadIdx(path, 1); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  // zlib notices either an invalid code mid-stream or the CRC at the end.
  EXPECT_TRUE(std::regex_search(msg, std::regex("at offset [0-9]+ of the decompressed stream"))) << msg;
}

TEST_F(IdxTest, TruncatedPlainFileGivesExactOffset) {
  std::vector<uint8_t> bytes = IdxHeader(0x08, {5, 4, 4});
  bytes.resize(bytes.size() + 50, 7);  // 50 of 80 pixel bytes
  WriteBytes(Tmp("images"), bytes);
  std::string msg = DataLossMessage([&] { ReadIdx(Tmp("images"), 3); });
  EXPECT_NE(msg.find(Tmp("images") + ": truncated at offset 66: expected 80 bytes of pixels"), std::string::npos)
      << msg;
}

TEST_F(IdxTest, BadHeadersAreRejected) {
  auto write = [&](std::vector<uint8_t> b) { WriteBytes(Tmp("f"), b); return Tmp("f"); };
  std::string msg = DataLossMessage([&] { ReadIdx(write({0x1f, 0x00, 0x08, 0x01, 0, 0, 0, 1, 3}), 1); });
  EXPECT_NE(msg.find("bad magic 0x1f000801 at offset 0"), std::string::npos) << msg;
  msg = DataLossMessage([&] { ReadIdx(write({0, 0, 0x0D, 0x01, 0, 0, 0, 1, 3}), 1); });
  EXPECT_NE(msg.find("element type 0x0d at offset 2"), std::string::npos) << msg;
  msg = DataLossMessage([&] { ReadIdx(write(IdxHeader(0x08, {1, 1, 1})), 1); });
  EXPECT_NE(msg.find("IDX has 3 dims at offset 3: expected 1"), std::string::npos) << msg;
  msg = DataLossMessage([&] { ReadIdx(write(IdxHeader(0x08, {2, 0, 3})), 3); });
  EXPECT_NE(msg.find("dim 1 is 0 at offset 8"), std::string::npos) << msg;
  msg = DataLossMessage([&] { ReadIdx(write({0, 0, 8}), 1); });
  EXPECT_NE(msg.find("truncated at offset 3"), std::string::npos) << msg;
  std::vector<uint8_t> extra = IdxHeader(0x08, {2});
  extra.insert(extra.end(), {1, 2, 3});
  msg = DataLossMessage([&] { ReadIdx(write(extra), 1); });
  EXPECT_NE(msg.find("trailing data at offset 10"), std::string::npos) << msg;
  // A header claiming a huge payload fails at the real end, without allocating it.
  msg = DataLossMessage([&] { ReadIdx(write(IdxHeader(0x08, {60000, 4096, 256})), 3); });
  EXPECT_NE(msg.find("truncated at offset 16"), std::string::npos) << msg;
  try {
    ReadIdx(Tmp("missing"), 1);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  }
}

TEST_F(IdxTest, LabelCountAndRangeAreChecked) {
  auto images = IdxHeader(0x08, {3, 2, 2});
  images.resize(images.size() + 12, 100);
  auto labels = IdxHeader(0x08, {4});
  labels.insert(labels.end(), {0, 1, 2, 3});
  for (const char* split : {"train", "t10k"}) {
    WriteBytes(Tmp(std::string(split) + "-images-idx3-ubyte"), images);
    WriteBytes(Tmp(std::string(split) + "-labels-idx1-ubyte"), labels);
  }
  std::string msg = DataLossMessage([&] { LoadFashionMnist(tmp_.string(), 0, 0); });
  EXPECT_NE(msg.find("holds 3 images but"), std::string::npos) << msg;
  EXPECT_NE(msg.find("4 labels"), std::string::npos) << msg;

  labels = IdxHeader(0x08, {3});
  labels.insert(labels.end(), {0, 10, 2});
  WriteBytes(Tmp("train-labels-idx1-ubyte"), labels);
  msg = DataLossMessage([&] { LoadFashionMnist(tmp_.string(), 0, 0); });
  EXPECT_NE(msg.find(Tmp("train-labels-idx1-ubyte") + ": label 10 of image 1 at offset 9"), std::string::npos)
      << msg;
}

// Damaged files built here (no data set needed): every cut of a gzip or plain
// file, a damaged gzip trailer, dims whose product overflows, and the
// in-memory entry point ParseIdx giving the same messages as ReadIdx.
class IdxFileErrorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tmp_ = fs::temp_directory_path() / ("dtrain_idx_errors_" + std::to_string(::getpid()));
    fs::create_directories(tmp_);
    images_ = IdxHeader(0x08, {4, 5, 5});
    uint32_t x = 12345;
    for (int i = 0; i < 100; ++i) images_.push_back(uint8_t((x = x * 1103515245 + 12345) >> 16));
  }
  void TearDown() override { fs::remove_all(tmp_); }
  std::string Tmp(const std::string& name) { return (tmp_ / name).string(); }
  fs::path tmp_;
  std::vector<uint8_t> images_;  // a valid 4x5x5 IDX file
};

TEST_F(IdxFileErrorsTest, EveryCutOfAPlainFileGivesItsOffset) {
  WriteBytes(Tmp("images"), images_);
  EXPECT_EQ(ReadIdx(Tmp("images"), 3).data.size(), 100u);
  for (size_t n = 0; n < images_.size(); ++n) {
    WriteBytes(Tmp("images"), std::vector<uint8_t>(images_.begin(), images_.begin() + n));
    std::string msg = DataLossMessage([&] { ReadIdx(Tmp("images"), 3); });
    EXPECT_NE(msg.find(Tmp("images") + ": truncated at offset " + std::to_string(n) + ": "), std::string::npos)
        << msg;
  }
}

TEST_F(IdxFileErrorsTest, EveryCutOfAGzipFileIsDataLoss) {
  const std::string path = Tmp("images.gz");
  WriteGzip(path, images_);
  const std::vector<uint8_t> gz = ReadBytes(path);
  ASSERT_EQ(ReadIdx(path, 3).data.size(), 100u);
  for (size_t n = 0; n < gz.size(); ++n) {
    WriteBytes(path, std::vector<uint8_t>(gz.begin(), gz.begin() + n));
    SCOPED_TRACE("first " + std::to_string(n) + " of " + std::to_string(gz.size()) + " bytes");
    std::string msg = DataLossMessage([&] { ReadIdx(path, 3); });
    EXPECT_EQ(msg.rfind(path + ": ", 0), 0u) << msg;
    EXPECT_TRUE(std::regex_search(msg, std::regex("truncated.* at offset [0-9]+"))) << msg;
  }
  // Cut inside the 8-byte gzip trailer: every pixel arrived, but the CRC-32 was never checked.
  WriteBytes(path, std::vector<uint8_t>(gz.begin(), gz.end() - 4));
  std::string msg = DataLossMessage([&] { ReadIdx(path, 3); });
  EXPECT_NE(msg.find(path + ": truncated gzip stream at offset 116 of the decompressed stream: expected its 8-byte "
                            "trailer"),
            std::string::npos)
      << msg;
}

TEST_F(IdxFileErrorsTest, DamagedGzipTrailerIsDataLoss) {
  const std::string path = Tmp("images.gz");
  WriteGzip(path, images_);
  const std::vector<uint8_t> gz = ReadBytes(path);
  for (size_t i = gz.size() - 8; i < gz.size(); ++i) {
    std::vector<uint8_t> bad = gz;
    bad[i] ^= 0x01;
    WriteBytes(path, bad);
    std::string msg = DataLossMessage([&] { ReadIdx(path, 3); });
    EXPECT_NE(msg.find(path + ": corrupt gzip data at offset 116 of the decompressed stream: zlib: incorrect"),
              std::string::npos)
        << msg;
  }
}

TEST_F(IdxFileErrorsTest, DimsWhoseProductWrapsAreRejected) {
  // 2^20 * 2^16 * 2^28 = 2^64 wraps to 0; 2731 * 22871553 * 590652931 = 2^64 + 1 to 1.
  std::vector<uint8_t> zero = IdxHeader(0x08, {1u << 20, 1u << 16, 1u << 28});
  std::vector<uint8_t> one = IdxHeader(0x08, {2731, 22871553, 590652931});
  one.push_back(7);
  for (const auto& bytes : {zero, one}) {
    std::string msg = DataLossMessage([&] { ParseIdx(bytes, "wrap.idx", 3); });
    EXPECT_NE(msg.find("wrap.idx: dims too large at offset 12: expected at most 2^36"), std::string::npos) << msg;
  }
}

TEST_F(IdxFileErrorsTest, InMemoryMatchesFile) {
  std::vector<uint8_t> cut(images_.begin(), images_.begin() + 50);
  WriteBytes(Tmp("cut"), cut);
  std::string from_file = DataLossMessage([&] { ReadIdx(Tmp("cut"), 3); });
  std::string from_memory = DataLossMessage([&] { ParseIdx(cut, Tmp("cut"), 3); });
  EXPECT_EQ(from_file, from_memory);
  EXPECT_EQ(ParseIdx(images_, "m", 3).data, std::vector<uint8_t>(images_.begin() + 16, images_.end()));
  WriteGzip(Tmp("images.gz"), images_);
  EXPECT_EQ(ParseIdx(ReadBytes(Tmp("images.gz")), "m.gz", 3).dims, (std::vector<int64_t>{4, 5, 5}));
}

TEST(DatasetTest, UnsupportedNamesAreRejected) {
  DatasetSpec spec;
  spec.name = "imagenet-folder";
  try {
    LoadDataset(spec, 1);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("imagenet-folder"), std::string::npos);
  }
  spec.name = "cifar";
  EXPECT_THROW(LoadDataset(spec, 1), Error);
}

}  // namespace
}  // namespace dtrain::data
