// ImageFolder listing (OpenImageFolder) and the dtrain shard format
// (ShardWriter, OpenShards): torchvision's order and labels, the folder errors,
// the shard round trip (shard record k == folder record k), one-pread reads,
// and every kind of damage (record CRC, index CRC, truncation, version, missing
// shard) reported as an Error naming the file — never a wrong label.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>

#include "common/crc32c.h"
#include "common/error.h"
#include "worker/data/image_records.h"
#include "worker/data/shard_format.h"

namespace dtrain::data {
namespace {

namespace fs = std::filesystem;

// An 8x8 greyscale JPEG and a 3x2 greyscale PNG, made once with Pillow 9.4:
//   im = Image.new("L", (8, 8)); im.putpixel((x, y), x * 32) for every pixel
//   im.save(buf, "JPEG", quality=50, optimize=True)
//   Image.new("L", (3, 2), 200).save(buf, "PNG")
const uint8_t kTinyJpeg[] = {
    0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01, 0x01, 0x00, 0x00, 0x01,
    0x00, 0x01, 0x00, 0x00, 0xff, 0xdb, 0x00, 0x43, 0x00, 0x10, 0x0b, 0x0c, 0x0e, 0x0c, 0x0a, 0x10,
    0x0e, 0x0d, 0x0e, 0x12, 0x11, 0x10, 0x13, 0x18, 0x28, 0x1a, 0x18, 0x16, 0x16, 0x18, 0x31, 0x23,
    0x25, 0x1d, 0x28, 0x3a, 0x33, 0x3d, 0x3c, 0x39, 0x33, 0x38, 0x37, 0x40, 0x48, 0x5c, 0x4e, 0x40,
    0x44, 0x57, 0x45, 0x37, 0x38, 0x50, 0x6d, 0x51, 0x57, 0x5f, 0x62, 0x67, 0x68, 0x67, 0x3e, 0x4d,
    0x71, 0x79, 0x70, 0x64, 0x78, 0x5c, 0x65, 0x67, 0x63, 0xff, 0xc0, 0x00, 0x0b, 0x08, 0x00, 0x08,
    0x00, 0x08, 0x01, 0x01, 0x11, 0x00, 0xff, 0xc4, 0x00, 0x14, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0xff, 0xc4, 0x00, 0x16,
    0x10, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x06, 0x43, 0xff, 0xda, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3f, 0x00, 0x3a, 0x54,
    0xcf, 0xff, 0xd9,
};
const uint8_t kTinyPng[] = {
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x02, 0x08, 0x00, 0x00, 0x00, 0x00, 0xb8, 0x1f, 0x39,
    0xc6, 0x00, 0x00, 0x00, 0x10, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x3c, 0xc1, 0xc0, 0xc0,
    0xc4, 0xc0, 0xc0, 0x00, 0x00, 0x05, 0x90, 0x00, 0xcc, 0x9d, 0xb3, 0xc4, 0x0d, 0x00, 0x00, 0x00,
    0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
};
std::vector<uint8_t> Jpeg() { return {kTinyJpeg, kTinyJpeg + sizeof kTinyJpeg}; }
std::vector<uint8_t> Png() { return {kTinyPng, kTinyPng + sizeof kTinyPng}; }

// A JPEG with `tag` after its end marker: decoders ignore it, but every file's
// bytes (and length) differ, so a record read from the wrong place shows.
std::vector<uint8_t> TaggedJpeg(const std::string& tag) {
  std::vector<uint8_t> b(sizeof kTinyJpeg + tag.size());
  std::memcpy(b.data(), kTinyJpeg, sizeof kTinyJpeg);
  std::memcpy(b.data() + sizeof kTinyJpeg, tag.data(), tag.size());
  return b;
}

std::vector<uint8_t> ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}
void WriteBytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}
uint32_t LoadLE32(const std::vector<uint8_t>& b, size_t at) {
  return uint32_t{b[at]} | uint32_t{b[at + 1]} << 8 | uint32_t{b[at + 2]} << 16 | uint32_t{b[at + 3]} << 24;
}
void StoreLE32(std::vector<uint8_t>* b, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) (*b)[at + i] = static_cast<uint8_t>(v >> (8 * i));
}

// Runs fn and returns the dtrain::Error it throws (fails the test if none).
Error Thrown(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "no dtrain::Error thrown";
  return Error(ErrorCode::kInternal, "");
}

class RecordsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/dtrain-records-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    tmp_ = tmpl;
  }
  void TearDown() override { fs::remove_all(tmp_); }

  // tmp/<name>/<class>/<file> for each (class, file); the bytes are a tagged JPEG.
  std::string MakeFolder(const std::string& name, const std::vector<std::pair<std::string, std::string>>& files) {
    const std::string dir = tmp_ + "/" + name;
    for (const auto& [cls, file] : files) WriteBytes(dir + "/" + cls + "/" + file, TaggedJpeg(cls + "/" + file));
    return dir;
  }
  // Three classes, seven images of different lengths, and a few non-images.
  std::string StandardFolder() {
    return MakeFolder("folder", {{"n02", "b.JPEG"}, {"n01", "z.jpeg"}, {"n01", "a.JPEG"}, {"n03", "only.png"},
                                 {"n02", "a.jpg"}, {"n02", "c.Png"}, {"n01", "m.JPEG"}, {"n01", "notes.txt"},
                                 {"n03", "labels.xml"}});
  }
  std::vector<std::string> Shards(const std::string& dir) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }
  // Packs `records` into tmp/<out> with ShardWriter, as dtrain-pack does.
  std::string Pack(const ImageRecords& records, const std::string& out, uint64_t shard_bytes,
                   const std::string& split = "train") {
    const std::string dir = tmp_ + "/" + out;
    ShardWriter w(dir, split, records.class_names(), shard_bytes);
    std::vector<uint8_t> bytes;
    for (int64_t i = 0; i < records.size(); ++i) {
      records.Read(i, &bytes);
      w.Add(records.label(i), bytes);
    }
    w.Commit(/*replace_existing=*/false);
    return dir;
  }

  std::string tmp_;
};

// ---- ImageFolder ----

TEST_F(RecordsTest, FolderClassesSortedByNameFilesSortedLabelsArePositions) {
  // Byte order as Python's sorted(): "B" < "a" < "b", "X.JPEG" < "a.jpg".
  const std::string dir =
      MakeFolder("f", {{"b", "y.jpg"}, {"a", "x.png"}, {"B", "a.jpg"}, {"B", "X.JPEG"}, {"a", "sub/deep/k.jpeg"},
                       {"a", "sub-x/j.jpeg"}, {"a", "sub/m.jpg"}, {"a", "readme.md"}});
  const auto r = OpenImageFolder(dir);
  EXPECT_EQ(r->class_names(), (std::vector<std::string>{"B", "a", "b"}));
  EXPECT_EQ(r->classes(), 3);
  // What torchvision 0.14's ImageFolder(dir).samples lists for this tree (run
  // once with Debian's python3-torchvision): a class folder is walked
  // recursively in sorted(os.walk()) order, so "sub-x" comes before "sub/deep".
  const std::vector<std::pair<std::string, int>> expected = {
      {"B/X.JPEG", 0},      {"B/a.jpg", 0},           {"a/x.png", 1}, {"a/sub/m.jpg", 1},
      {"a/sub-x/j.jpeg", 1}, {"a/sub/deep/k.jpeg", 1}, {"b/y.jpg", 2}};
  ASSERT_EQ(r->size(), static_cast<int64_t>(expected.size()));
  std::vector<uint8_t> bytes;
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(r->Describe(i), dir + "/" + expected[i].first) << i;
    EXPECT_EQ(r->label(i), expected[i].second) << i;
    r->Read(i, &bytes);
    EXPECT_EQ(bytes, TaggedJpeg(expected[i].first)) << i;
  }
}

TEST_F(RecordsTest, FolderIgnoresNonImageExtensionsAnyCaseAccepted) {
  const auto r = OpenImageFolder(StandardFolder());
  std::vector<std::string> names;
  for (int64_t i = 0; i < r->size(); ++i) names.push_back(fs::path(r->Describe(i)).filename().string());
  EXPECT_EQ(names, (std::vector<std::string>{"a.JPEG", "m.JPEG", "z.jpeg", "a.jpg", "b.JPEG", "c.Png", "only.png"}));
}

TEST_F(RecordsTest, FolderMissingIsNotFoundNamingIt) {
  const Error e = Thrown([&] { OpenImageFolder(tmp_ + "/nope"); });
  EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  EXPECT_NE(std::string(e.what()).find(tmp_ + "/nope: no such image folder"), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find("DIR/<class>/<image>"), std::string::npos) << e.what();
}

TEST_F(RecordsTest, FolderWithoutClassFoldersSaysWhatIsExpected) {
  WriteBytes(tmp_ + "/flat/a.JPEG", Jpeg());
  WriteBytes(tmp_ + "/flat/b.JPEG", Jpeg());
  const Error e = Thrown([&] { OpenImageFolder(tmp_ + "/flat"); });
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  const std::string msg = e.what();
  EXPECT_NE(msg.find(tmp_ + "/flat: no class folders"), std::string::npos) << msg;
  EXPECT_NE(msg.find("found 2 images directly in it"), std::string::npos) << msg;
  WriteBytes(tmp_ + "/file", Jpeg());
  EXPECT_EQ(Thrown([&] { OpenImageFolder(tmp_ + "/file"); }).code(), ErrorCode::kInvalidArgument);
}

TEST_F(RecordsTest, FolderEmptyClassIsNamedWithWhatItNeeds) {
  const std::string dir = MakeFolder("f", {{"good", "a.JPEG"}, {"empty", "notes.txt"}});
  const Error e = Thrown([&] { OpenImageFolder(dir); });
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  const std::string msg = e.what();
  EXPECT_NE(msg.find("class 'empty' (" + dir + "/empty) has no images; each class folder needs at least one "
                     ".JPEG/.jpg/.png"),
            std::string::npos)
      << msg;
}

TEST_F(RecordsTest, FolderReadOfVanishedFileIsNotFound) {
  const auto r = OpenImageFolder(StandardFolder());
  fs::remove(r->Describe(2));
  std::vector<uint8_t> bytes = {1, 2, 3};
  const Error e = Thrown([&] { r->Read(2, &bytes); });
  EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  EXPECT_NE(std::string(e.what()).find(r->Describe(2)), std::string::npos) << e.what();
  EXPECT_TRUE(bytes.empty());
  EXPECT_EQ(Thrown([&] { r->Read(r->size(), &bytes); }).code(), ErrorCode::kInvalidArgument);
}

// ---- the shard format ----

TEST_F(RecordsTest, ShardFileNamesAreCanonical) {
  EXPECT_EQ(ShardFileName("train", 3, 12), "train-00003-of-00012.dtshard");
  EXPECT_EQ(ShardFileName("val", 7, 123456), "val-000007-of-123456.dtshard");
  uint32_t n = 0, m = 0;
  EXPECT_TRUE(ParseShardFileName("train-00003-of-00012.dtshard", "train", &n, &m));
  EXPECT_EQ(n, 3u);
  EXPECT_EQ(m, 12u);
  for (const char* bad : {"train-3-of-12.dtshard", "train-00003-of-00012.dtshard.tmp", "val-00003-of-00012.dtshard",
                          "train-x-00003-of-00012.dtshard", ".train-00003.dtshard.tmp.1", "train-00003-of-00012"})
    EXPECT_FALSE(ParseShardFileName(bad, "train", &n, &m)) << bad;
}

TEST_F(RecordsTest, ShardRoundTripEqualsFolderRecordForRecord) {
  const auto folder = OpenImageFolder(StandardFolder());
  // ~2 records per shard: the records are ~170 bytes, the class block 21 bytes.
  const std::string dir = Pack(*folder, "shards", 600);
  const auto shards = OpenShards(dir, "train");
  ASSERT_EQ(shards->size(), folder->size());
  EXPECT_EQ(shards->class_names(), folder->class_names());
  const std::vector<std::string> files = Shards(dir);
  ASSERT_GE(files.size(), 3u);
  EXPECT_EQ(files.front(), "train-00000-of-0000" + std::to_string(files.size()) + ".dtshard");
  std::vector<uint8_t> a, b;
  for (int64_t i = 0; i < folder->size(); ++i) {
    folder->Read(i, &a);
    shards->Read(i, &b);
    EXPECT_EQ(a, b) << i;
    EXPECT_EQ(shards->label(i), folder->label(i)) << i;
    EXPECT_NE(shards->Describe(i).find(dir + "/train-0000"), std::string::npos) << shards->Describe(i);
  }
  for (const auto& f : files) {
    const auto bytes = ReadBytes(dir + "/" + f);
    EXPECT_LE(bytes.size(), 600u) << f;
  }
}

TEST_F(RecordsTest, ShardLayoutIsTheDocumentedOne) {
  const auto folder = OpenImageFolder(StandardFolder());
  const std::string dir = Pack(*folder, "shards", 1 << 20);
  ASSERT_EQ(Shards(dir), std::vector<std::string>{"train-00000-of-00001.dtshard"});
  const std::vector<uint8_t> b = ReadBytes(dir + "/train-00000-of-00001.dtshard");
  EXPECT_EQ(std::string(b.begin(), b.begin() + 8), "DTRAINSH");
  EXPECT_EQ(LoadLE32(b, 8), kShardVersion);
  EXPECT_EQ(LoadLE32(b, 16), 1u);                                          // shards
  EXPECT_EQ(LoadLE32(b, 20), static_cast<uint32_t>(folder->size()));       // records
  const uint64_t index_offset = LoadLE32(b, 32);
  EXPECT_EQ(LoadLE32(b, 40), 3u);                                          // classes
  const uint32_t class_bytes = LoadLE32(b, 44);
  EXPECT_EQ(class_bytes, 3u * (4 + 3));                                    // "n01" "n02" "n03"
  EXPECT_EQ(b.size(), index_offset + 24 * folder->size() + class_bytes);
  EXPECT_EQ(LoadLE32(b, 48), Crc32c(std::span<const uint8_t>(b).subspan(index_offset)));
  EXPECT_EQ(LoadLE32(b, 60), Crc32c(std::span<const uint8_t>(b).first(60)));
  // Index entry k: offset, length, label, CRC32C of exactly the folder's bytes.
  uint64_t offset = 64;
  std::vector<uint8_t> image;
  for (int64_t k = 0; k < folder->size(); ++k) {
    const size_t e = index_offset + 24 * k;
    folder->Read(k, &image);
    EXPECT_EQ(LoadLE32(b, e), offset) << k;
    EXPECT_EQ(LoadLE32(b, e + 8), image.size()) << k;
    EXPECT_EQ(static_cast<int32_t>(LoadLE32(b, e + 12)), folder->label(k)) << k;
    EXPECT_EQ(LoadLE32(b, e + 16), Crc32c(image)) << k;
    EXPECT_TRUE(std::equal(image.begin(), image.end(), b.begin() + offset)) << k;
    offset += image.size();
  }
  EXPECT_EQ(offset, index_offset);
}

TEST_F(RecordsTest, ShardReadOfRecordKTouchesOnlyRecordK) {
  const auto folder = OpenImageFolder(StandardFolder());
  const std::string dir = Pack(*folder, "shards", 1 << 20);
  const auto shards = OpenShards(dir, "train");
  // After opening, damage every record's bytes except record 4's: Read(4)
  // still succeeds, so it reads its own bytes at its indexed offset and no others.
  const std::string path = dir + "/train-00000-of-00001.dtshard";
  std::vector<uint8_t> b = ReadBytes(path);
  const uint64_t index_offset = LoadLE32(b, 32);
  const uint64_t k_offset = LoadLE32(b, index_offset + 24 * 4), k_length = LoadLE32(b, index_offset + 24 * 4 + 8);
  for (uint64_t p = 64; p < index_offset; ++p)
    if (p < k_offset || p >= k_offset + k_length) b[p] ^= 0x5a;
  WriteBytes(path, b);
  std::vector<uint8_t> got, want;
  shards->Read(4, &got);
  folder->Read(4, &want);
  EXPECT_EQ(got, want);
  EXPECT_EQ(shards->Describe(4), path + "@" + std::to_string(k_offset));
  EXPECT_EQ(Thrown([&] { shards->Read(3, &got); }).code(), ErrorCode::kDataLoss);
  EXPECT_EQ(Thrown([&] { shards->Read(5, &got); }).code(), ErrorCode::kDataLoss);
}

TEST_F(RecordsTest, ShardDamagedRecordFailsItsCrcNamingFileAndOffset) {
  const auto folder = OpenImageFolder(StandardFolder());
  const std::string dir = Pack(*folder, "shards", 1 << 20);
  const std::string path = dir + "/train-00000-of-00001.dtshard";
  std::vector<uint8_t> b = ReadBytes(path);
  const uint64_t index_offset = LoadLE32(b, 32);
  const uint64_t offset = LoadLE32(b, index_offset + 24 * 5);
  b[offset + 40] ^= 0x01;  // one bit inside record 5 (label 1)
  WriteBytes(path, b);
  const auto shards = OpenShards(dir, "train");  // the index is intact: opening succeeds
  std::vector<uint8_t> out = {9};
  const Error e = Thrown([&] { shards->Read(5, &out); });
  EXPECT_EQ(e.code(), ErrorCode::kDataLoss);
  EXPECT_NE(std::string(e.what()).find(path + " at byte offset " + std::to_string(offset) +
                                       ": record 5 (label 1) fails its CRC32C"),
            std::string::npos)
      << e.what();
  EXPECT_TRUE(out.empty());
  shards->Read(4, &out);  // its neighbours are fine
  shards->Read(6, &out);
}

TEST_F(RecordsTest, ShardDamagedIndexFailsAtOpen) {
  const std::string dir = Pack(*OpenImageFolder(StandardFolder()), "shards", 1 << 20);
  const std::string path = dir + "/train-00000-of-00001.dtshard";
  std::vector<uint8_t> b = ReadBytes(path);
  b[LoadLE32(b, 32) + 24 * 2 + 12] ^= 0x01;  // record 2's label
  WriteBytes(path, b);
  const Error e = Thrown([&] { OpenShards(dir, "train"); });
  EXPECT_EQ(e.code(), ErrorCode::kDataLoss);
  EXPECT_NE(std::string(e.what()).find(path + ": the index (byte offset"), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find("fails its CRC32C"), std::string::npos) << e.what();
}

TEST_F(RecordsTest, ShardTruncatedFailsAtOpenNamingTheFile) {
  const std::string dir = Pack(*OpenImageFolder(StandardFolder()), "shards", 600);
  const std::string path = dir + "/train-00001-of-0000" + std::to_string(Shards(dir).size()) + ".dtshard";
  const auto size = fs::file_size(path);
  fs::resize_file(path, size - 1);
  Error e = Thrown([&] { OpenShards(dir, "train"); });
  EXPECT_EQ(e.code(), ErrorCode::kDataLoss);
  EXPECT_NE(std::string(e.what()).find(path + ": truncated: " + std::to_string(size - 1) +
                                       " bytes, but its header describes " + std::to_string(size)),
            std::string::npos)
      << e.what();
  fs::resize_file(path, 10);
  e = Thrown([&] { OpenShards(dir, "train"); });
  EXPECT_EQ(e.code(), ErrorCode::kDataLoss);
  EXPECT_NE(std::string(e.what()).find(path + ": truncated: 10 bytes"), std::string::npos) << e.what();
}

TEST_F(RecordsTest, ShardOfAnotherFormatVersionAsksForARepack) {
  const std::string dir = Pack(*OpenImageFolder(StandardFolder()), "shards", 1 << 20);
  const std::string path = dir + "/train-00000-of-00001.dtshard";
  std::vector<uint8_t> b = ReadBytes(path);
  StoreLE32(&b, 8, 2);
  StoreLE32(&b, 60, Crc32c(std::span<const uint8_t>(b).first(60)));  // a valid version-2 header
  WriteBytes(path, b);
  const Error e = Thrown([&] { OpenShards(dir, "train"); });
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(std::string(e.what()), path + ": dtrain shard format version 2; this dtrain reads version 1 — repack "
                                          "with this version's dtrain-pack");
}

TEST_F(RecordsTest, ShardDamagedHeaderAndForeignFileAreDataLoss) {
  const std::string dir = Pack(*OpenImageFolder(StandardFolder()), "shards", 1 << 20);
  const std::string path = dir + "/train-00000-of-00001.dtshard";
  std::vector<uint8_t> b = ReadBytes(path);
  b[21] ^= 0x01;  // the record count
  WriteBytes(path, b);
  Error e = Thrown([&] { OpenShards(dir, "train"); });
  EXPECT_EQ(e.code(), ErrorCode::kDataLoss);
  EXPECT_NE(std::string(e.what()).find(path + ": the header fails its CRC32C"), std::string::npos) << e.what();
  WriteBytes(path, Jpeg());
  e = Thrown([&] { OpenShards(dir, "train"); });
  EXPECT_EQ(e.code(), ErrorCode::kDataLoss);
  EXPECT_NE(std::string(e.what()).find(path + ": not a dtrain shard"), std::string::npos) << e.what();
}

TEST_F(RecordsTest, ShardSetMissingAShardOrMixedIsRefused) {
  const std::string dir = Pack(*OpenImageFolder(StandardFolder()), "shards", 600);
  const std::vector<std::string> files = Shards(dir);
  const auto count = static_cast<uint32_t>(files.size());
  const std::string beyond = dir + "/" + ShardFileName("train", count, count);
  fs::copy_file(dir + "/" + files[0], beyond);
  Error e = Thrown([&] { OpenShards(dir, "train"); });
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(std::string(e.what()).find(ShardFileName("train", count, count) + " is numbered beyond its set's"),
            std::string::npos)
      << e.what();
  fs::remove(beyond);
  fs::remove(dir + "/" + files[1]);
  e = Thrown([&] { OpenShards(dir, "train"); });
  EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  EXPECT_NE(std::string(e.what()).find("shard " + files[1] + " is missing"), std::string::npos) << e.what();
  WriteBytes(dir + "/train-00000-of-00099.dtshard", Jpeg());
  e = Thrown([&] { OpenShards(dir, "train"); });
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(std::string(e.what()).find("mixed"), std::string::npos) << e.what();
  e = Thrown([&] { OpenShards(dir, "val"); });
  EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  EXPECT_NE(std::string(e.what()).find("no val-NNNNN-of-MMMMM.dtshard files"), std::string::npos) << e.what();
}

TEST_F(RecordsTest, ShardWriterLeavesNothingWithoutCommitAndReplacesOnlyWhenAsked) {
  const auto folder = OpenImageFolder(StandardFolder());
  const std::string dir = tmp_ + "/out";
  std::vector<uint8_t> bytes;
  {
    ShardWriter w(dir, "train", folder->class_names(), 400);
    for (int64_t i = 0; i < folder->size(); ++i) {
      folder->Read(i, &bytes);
      w.Add(folder->label(i), bytes);
    }
    EXPECT_FALSE(Shards(dir).empty());  // temporaries while it runs...
    for (const auto& f : Shards(dir)) EXPECT_EQ(f[0], '.') << f;  // ...never a shard's name
  }  // destroyed without Commit: an interrupted pack
  EXPECT_TRUE(Shards(dir).empty());

  Pack(*folder, "out", 400);
  const size_t before = Shards(dir).size();
  ShardWriter again(dir, "train", folder->class_names(), 1 << 20);
  folder->Read(0, &bytes);
  again.Add(0, bytes);
  EXPECT_EQ(Thrown([&] { again.Commit(false); }).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(Shards(dir).size(), before + 1);  // the old set and one temporary
  ShardWriter replace(dir, "train", folder->class_names(), 1 << 20);
  replace.Add(0, bytes);
  replace.Commit(true);
  EXPECT_EQ(OpenShards(dir, "train")->size(), 1);
}

TEST_F(RecordsTest, ParseShardOfAHandMadeShard) {
  // A one-record shard built from the documented layout alone.
  const std::vector<uint8_t> image = Jpeg();
  std::vector<uint8_t> b(64);
  b.insert(b.end(), image.begin(), image.end());
  const size_t index_offset = b.size();
  b.resize(b.size() + 24 + 4 + 3);
  StoreLE32(&b, index_offset, 64);
  StoreLE32(&b, index_offset + 8, static_cast<uint32_t>(image.size()));
  StoreLE32(&b, index_offset + 12, 0);
  StoreLE32(&b, index_offset + 16, Crc32c(image));
  StoreLE32(&b, index_offset + 24, 3);
  std::memcpy(&b[index_offset + 28], "cat", 3);
  std::memcpy(b.data(), "DTRAINSH", 8);
  StoreLE32(&b, 8, 1);
  StoreLE32(&b, 16, 1);
  StoreLE32(&b, 20, 1);
  StoreLE32(&b, 32, static_cast<uint32_t>(index_offset));
  StoreLE32(&b, 40, 1);
  StoreLE32(&b, 44, 7);
  StoreLE32(&b, 48, Crc32c(std::span<const uint8_t>(b).subspan(index_offset)));
  StoreLE32(&b, 60, Crc32c(std::span<const uint8_t>(b).first(60)));
  const ParsedShard s = ParseShard(b, "hand.dtshard");
  EXPECT_EQ(s.index.class_names, std::vector<std::string>{"cat"});
  ASSERT_EQ(s.index.entries.size(), 1u);
  EXPECT_EQ(s.index.entries[0].length, image.size());
  const auto header = EncodeShardHeader(s.header);
  EXPECT_TRUE(std::equal(header.begin(), header.end(), b.begin()));
  const auto tail = EncodeShardIndex(s.index.entries, s.index.class_names);
  EXPECT_TRUE(std::equal(tail.begin(), tail.end(), b.begin() + index_offset));
}

// ---- what dtrain-pack accepts ----

TEST_F(RecordsTest, PackValidationAcceptsJpegAndPngAndRefusesOtherFiles) {
  ImageInfo info = CheckPackableImage(Jpeg(), "a.JPEG");
  EXPECT_EQ(info.format, ImageFormat::kJpeg);
  EXPECT_EQ(info.width, 8);
  EXPECT_EQ(info.height, 8);
  info = CheckPackableImage(Png(), "png-named.JPEG");  // ImageNet has PNGs named .JPEG
  EXPECT_EQ(info.format, ImageFormat::kPng);
  EXPECT_EQ(info.width, 3);
  EXPECT_EQ(info.height, 2);
  const std::string text = "<html>not an image</html>";
  const Error e = Thrown([&] { CheckPackableImage({reinterpret_cast<const uint8_t*>(text.data()), text.size()},
                                                  "train/n01/fake.JPEG"); });
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  const std::string msg = e.what();
  EXPECT_EQ(msg.rfind("train/n01/fake.JPEG: not a JPEG or PNG image", 0), 0u) << msg;
  EXPECT_NE(msg.find("dtrain-pack packs JPEG and PNG files only"), std::string::npos) << msg;
  EXPECT_EQ(Thrown([&] { CheckPackableImage({}, "empty.jpg"); }).code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace dtrain::data
