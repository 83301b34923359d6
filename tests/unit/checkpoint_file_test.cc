// Checkpoint file format: round trips, exact layout, atomic replacement (a
// failed write leaves the previous file intact and no temporary behind), and
// every kind of damage (flipped bytes, truncation, bad magic/version/fields)
// read back as Error(kDataLoss) naming the file and the byte offset.
#include "tests/unit/checkpoint_test_util.h"
#include "worker/checkpoint/checkpoint_file.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <regex>

#include "common/crc32c.h"
#include "common/error.h"

namespace dtrain::ckpt {
namespace {

namespace fs = std::filesystem;

using test::ErrorMessage;
using test::ReadBytes;
using test::WriteBytes;

// Bit-at-a-time CRC32C, independent of the slice-by-8 code under test.
uint32_t ReferenceCrc32c(const uint8_t* p, size_t n) {
  uint32_t crc = ~0u;
  for (size_t i = 0; i < n; ++i) {
    crc ^= p[i];
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
  }
  return ~crc;
}

// Little-endian file builder, for hand-made (and deliberately bad) files.
struct Builder {
  std::vector<uint8_t> b;
  Builder& Raw(std::string_view s) {
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  Builder& U8(uint8_t v) {
    b.push_back(v);
    return *this;
  }
  Builder& U32(uint32_t v) {
    for (int i = 0; i < 4; ++i) b.push_back(uint8_t(v >> (8 * i)));
    return *this;
  }
  Builder& U64(uint64_t v) {
    for (int i = 0; i < 8; ++i) b.push_back(uint8_t(v >> (8 * i)));
    return *this;
  }
  Builder& Header(uint32_t count, uint32_t version = 1) { return Raw("DTRAINCK").U32(version).U32(count); }
  Builder& Section(uint8_t kind, std::string_view name, std::string_view payload) {
    return U8(kind).U32(uint32_t(name.size())).Raw(name).U64(payload.size()).Raw(payload);
  }
  // Appends a correct checksum trailer.
  std::vector<uint8_t> Seal() {
    U64(Crc32c(b));
    return b;
  }
};

CheckpointData Sample() {
  CheckpointData d;
  d.meta = {{"model", "resnet20"}, {"world_size", "4"}, {"step", "1200"}, {"epoch", "3"},
            {"seed", "42"},        {"rank", "1"},       {"kind", "train"}, {"note", "µ-batch ✓"}};
  d.tensors["params"] = {1.0f, -2.5f, 3.25e-8f, std::numeric_limits<float>::max(), -0.0f,
                         std::numeric_limits<float>::denorm_min(), std::numeric_limits<float>::infinity()};
  d.tensors["momentum"] = {0.5f, 0.25f};
  d.tensors["empty"] = {};
  d.blobs["rng"] = {0, 1, 2, 255, 0x80, 0};
  d.blobs["nothing"] = {};
  return d;
}

// The message names the file and a byte offset: "<name>: ... at offset <n>: ...".
void ExpectNamesFileAndOffset(const std::string& msg, const std::string& name) {
  EXPECT_EQ(msg.rfind(name + ": ", 0), 0u) << msg;
  EXPECT_TRUE(std::regex_search(msg, std::regex(" at offset [0-9]+: "))) << msg;
}

class CheckpointFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tmp_ = fs::temp_directory_path() / ("dtrain_ckpt_test_" + std::to_string(::getpid()));
    fs::remove_all(tmp_);
    fs::create_directories(tmp_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::permissions(tmp_ / "ro", fs::perms::owner_all, ec);
    fs::remove_all(tmp_);
  }
  std::string Tmp(const std::string& name) const { return (tmp_ / name).string(); }
  // Names in `dir` other than `keep` (leftover temporaries).
  static std::vector<std::string> Others(const fs::path& dir, const std::string& keep) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir))
      if (e.path().filename() != keep) out.push_back(e.path().filename().string());
    return out;
  }
  fs::path tmp_;
};

TEST(Crc32cTest, KnownVectorsAndReference) {
  const std::string check = "123456789";
  EXPECT_EQ(Crc32c({reinterpret_cast<const uint8_t*>(check.data()), check.size()}), 0xE3069283u);
  std::vector<uint8_t> v(32, 0);
  EXPECT_EQ(Crc32c(v), 0x8A9136AAu);  // RFC 3720 B.4
  std::fill(v.begin(), v.end(), 0xFF);
  EXPECT_EQ(Crc32c(v), 0x62A8AB43u);
  for (int i = 0; i < 32; ++i) v[i] = uint8_t(i);
  EXPECT_EQ(Crc32c(v), 0x46DD794Eu);
  EXPECT_EQ(Crc32c({}), 0u);
  // Every length and alignment up to 64 bytes against the bitwise reference, and chaining.
  std::mt19937 rng(7);
  std::vector<uint8_t> r(200);
  for (auto& x : r) x = uint8_t(rng());
  for (size_t off = 0; off < 8; ++off)
    for (size_t n = 0; n <= 64; ++n) {
      std::span<const uint8_t> s(r.data() + off, n);
      ASSERT_EQ(Crc32c(s), ReferenceCrc32c(s.data(), n)) << off << " " << n;
      const size_t cut = n / 3;
      ASSERT_EQ(Crc32c(s.subspan(cut), Crc32c(s.first(cut))), Crc32c(s)) << off << " " << n;
    }
}

TEST_F(CheckpointFileTest, RoundTripThroughFileAndMemory) {
  const CheckpointData d = Sample();
  const std::string path = Tmp("rank1/step-1200.ckpt");  // parent created
  WriteCheckpointFile(path, d);
  EXPECT_EQ(ReadCheckpointFile(path), d);
  EXPECT_EQ(ReadBytes(path), SerializeCheckpoint(d));
  EXPECT_EQ(ParseCheckpoint(SerializeCheckpoint(d), "mem"), d);
  EXPECT_EQ(SerializeCheckpoint(d), SerializeCheckpoint(CheckpointData(d)));  // deterministic
  EXPECT_TRUE(Others(tmp_ / "rank1", "step-1200.ckpt").empty());

  const CheckpointData empty;
  WriteCheckpointFile(Tmp("empty.ckpt"), empty);
  EXPECT_EQ(ReadCheckpointFile(Tmp("empty.ckpt")), empty);
  EXPECT_EQ(ReadBytes(Tmp("empty.ckpt")).size(), 16u + 8u);
}

TEST_F(CheckpointFileTest, FloatBitsSurvive) {
  CheckpointData d;
  const uint32_t bits[] = {0x7fc00001u, 0xffc00000u, 0x7f800001u, 0x80000000u, 0x00000001u, 0x3f800000u};
  for (uint32_t b : bits) d.tensors["t"].push_back(std::bit_cast<float>(b));
  CheckpointData back = ParseCheckpoint(SerializeCheckpoint(d), "mem");
  ASSERT_EQ(back.tensors["t"].size(), std::size(bits));
  for (size_t i = 0; i < std::size(bits); ++i) EXPECT_EQ(std::bit_cast<uint32_t>(back.tensors["t"][i]), bits[i]);
}

TEST_F(CheckpointFileTest, LayoutIsLittleEndianAndDocumented) {
  CheckpointData d;
  d.meta["k"] = "ab";
  d.tensors["t"] = {1.0f};
  d.blobs["b"] = {9};
  const std::vector<uint8_t> expected = Builder()
                                            .Header(3)
                                            .Section(1, "k", "ab")
                                            .Section(2, "t", std::string("\x00\x00\x80\x3f", 4))
                                            .Section(3, "b", "\x09")
                                            .Seal();
  EXPECT_EQ(SerializeCheckpoint(d), expected);
  // The trailer is the CRC32C of everything before it, zero-extended to 64 bits.
  const std::vector<uint8_t> body(expected.begin(), expected.end() - 8);
  const uint32_t crc = ReferenceCrc32c(body.data(), body.size());
  for (int i = 0; i < 8; ++i) EXPECT_EQ(expected[body.size() + i], i < 4 ? uint8_t(crc >> (8 * i)) : 0) << i;
}

TEST_F(CheckpointFileTest, OverwriteReplacesAtomically) {
  const std::string path = Tmp("c.ckpt");
  CheckpointData a = Sample(), b = Sample();
  b.meta["step"] = "1300";
  b.tensors["params"].assign(1000, 0.5f);
  WriteCheckpointFile(path, a);
  WriteCheckpointFile(path, b);
  EXPECT_EQ(ReadCheckpointFile(path), b);
  EXPECT_TRUE(Others(tmp_, "c.ckpt").empty());
}

// A write that fails midway (the file size limit makes write(2) fail with EFBIG
// after some bytes) leaves the previous file intact and removes its temporary.
TEST_F(CheckpointFileTest, FailedWriteKeepsPreviousFile) {
  const std::string path = Tmp("c.ckpt");
  const CheckpointData good = Sample();
  WriteCheckpointFile(path, good);
  const std::vector<uint8_t> before = ReadBytes(path);

  CheckpointData big = good;
  big.tensors["params"].assign(1 << 20, 1.0f);  // 4 MiB: several buffered writes
  struct rlimit old {};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old), 0);
  struct rlimit small = old;
  small.rlim_cur = 1 << 20;  // 1 MiB
  auto old_handler = signal(SIGXFSZ, SIG_IGN);
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
  std::string msg = ErrorMessage([&] { WriteCheckpointFile(path, big); }, ErrorCode::kUnavailable);
  setrlimit(RLIMIT_FSIZE, &old);
  signal(SIGXFSZ, old_handler);

  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find(std::strerror(EFBIG)), std::string::npos) << msg;
  EXPECT_NE(msg.find(".tmp." + std::to_string(::getpid())), std::string::npos) << msg;
  EXPECT_EQ(ReadBytes(path), before);
  EXPECT_EQ(ReadCheckpointFile(path), good);
  EXPECT_TRUE(Others(tmp_, "c.ckpt").empty()) << "leftover temporary";
}

TEST_F(CheckpointFileTest, UnwritablePlacesFailWithErrnoText) {
  // The parent is a file.
  WriteBytes(Tmp("file"), {1, 2, 3});
  std::string msg = ErrorMessage([&] { WriteCheckpointFile(Tmp("file/sub/c.ckpt"), Sample()); },
                                 ErrorCode::kUnavailable);
  EXPECT_NE(msg.find(Tmp("file/sub/c.ckpt")), std::string::npos) << msg;
  EXPECT_NE(msg.find("Not a directory"), std::string::npos) << msg;
  msg = ErrorMessage([&] { WriteCheckpointFile(Tmp("file/c.ckpt"), Sample()); }, ErrorCode::kUnavailable);
  EXPECT_NE(msg.find("Not a directory"), std::string::npos) << msg;
  EXPECT_EQ(ReadBytes(Tmp("file")), (std::vector<uint8_t>{1, 2, 3}));

  // The temporary cannot be created (a directory squats its name): the previous file stays.
  const std::string path = Tmp("c.ckpt");
  WriteCheckpointFile(path, Sample());
  fs::create_directory(path + ".tmp." + std::to_string(::getpid()));
  msg = ErrorMessage([&] { WriteCheckpointFile(path, CheckpointData{}); }, ErrorCode::kUnavailable);
  EXPECT_NE(msg.find(path + ": cannot create temporary checkpoint"), std::string::npos) << msg;
  EXPECT_NE(msg.find(std::strerror(EISDIR)), std::string::npos) << msg;
  EXPECT_EQ(ReadCheckpointFile(path), Sample());
  fs::remove(path + ".tmp." + std::to_string(::getpid()));

  // A read-only directory (root ignores permissions, so only checked as a user).
  if (::geteuid() != 0) {
    fs::create_directory(tmp_ / "ro");
    WriteCheckpointFile(Tmp("ro/c.ckpt"), Sample());
    fs::permissions(tmp_ / "ro", fs::perms::owner_read | fs::perms::owner_exec);
    msg = ErrorMessage([&] { WriteCheckpointFile(Tmp("ro/c.ckpt"), CheckpointData{}); }, ErrorCode::kUnavailable);
    EXPECT_NE(msg.find(std::strerror(EACCES)), std::string::npos) << msg;
    EXPECT_EQ(ReadCheckpointFile(Tmp("ro/c.ckpt")), Sample());
    EXPECT_TRUE(Others(tmp_ / "ro", "c.ckpt").empty());
  }
}

TEST_F(CheckpointFileTest, BadNamesAreRejectedBeforeWriting) {
  CheckpointData d;
  d.tensors[""] = {1.0f};
  std::string msg = ErrorMessage([&] { WriteCheckpointFile(Tmp("c.ckpt"), d); }, ErrorCode::kInvalidArgument);
  EXPECT_NE(msg.find("allowed: 1..4096"), std::string::npos) << msg;
  d = {};
  d.blobs["bad\xff"] = {};
  EXPECT_THROW(SerializeCheckpoint(d), Error);
  d = {};
  d.meta["ok"] = "\xc0\x80";  // overlong NUL
  msg = ErrorMessage([&] { SerializeCheckpoint(d); }, ErrorCode::kInvalidArgument);
  EXPECT_NE(msg.find("not UTF-8"), std::string::npos) << msg;
  d = {};
  d.meta[std::string(kMaxNameBytes + 1, 'x')] = "";
  EXPECT_THROW(SerializeCheckpoint(d), Error);
  EXPECT_FALSE(fs::exists(Tmp("c.ckpt")));
}

TEST_F(CheckpointFileTest, MissingFileIsNotFound) {
  std::string msg = ErrorMessage([&] { ReadCheckpointFile(Tmp("nope.ckpt")); }, ErrorCode::kNotFound);
  EXPECT_NE(msg.find(Tmp("nope.ckpt")), std::string::npos) << msg;
  ErrorMessage([&] { ReadCheckpointFile(Tmp("nodir/nope.ckpt")); }, ErrorCode::kNotFound);
  ErrorMessage([&] { ReadCheckpointFile(tmp_.string()); }, ErrorCode::kUnavailable);  // a directory
}

// Flipping any single byte is detected; the message names the region.
TEST_F(CheckpointFileTest, EveryFlippedByteIsDataLoss) {
  const std::string path = Tmp("flip.ckpt");
  const std::vector<uint8_t> good = SerializeCheckpoint(Sample());
  const size_t trailer = good.size() - 8;
  for (size_t i = 0; i < good.size(); ++i) {
    for (uint8_t mask : {0x01, 0x80, 0xff}) {
      std::vector<uint8_t> bad = good;
      bad[i] ^= mask;
      WriteBytes(path, bad);
      SCOPED_TRACE("byte " + std::to_string(i) + " ^ " + std::to_string(mask));
      const std::string msg = ErrorMessage([&] { ReadCheckpointFile(path); });
      ExpectNamesFileAndOffset(msg, path);
      if (i < 8) {
        EXPECT_NE(msg.find("bad magic"), std::string::npos) << msg;
        EXPECT_NE(msg.find("at offset 0:"), std::string::npos) << msg;
      } else if (i < 12) {
        EXPECT_NE(msg.find("unsupported checkpoint version"), std::string::npos) << msg;
        EXPECT_NE(msg.find("at offset 8: supported versions: 1"), std::string::npos) << msg;
      } else if (i >= trailer) {
        EXPECT_NE(msg.find("checksum mismatch at offset " + std::to_string(trailer)), std::string::npos) << msg;
        EXPECT_TRUE(std::regex_search(msg, std::regex("expected CRC32C 0x[0-9a-f]+ .*actual 0x[0-9a-f]+"))) << msg;
      }
    }
  }
  // A flipped payload byte leaves the structure intact: only the checksum notices.
  std::vector<uint8_t> bad = good;
  bad[trailer - 1] ^= 0x10;  // last byte of the last blob
  const std::string msg = ErrorMessage([&] { ParseCheckpoint(bad, "flipped.ckpt"); });
  EXPECT_NE(msg.find("flipped.ckpt: checksum mismatch at offset " + std::to_string(trailer) + ": expected CRC32C 0x"),
            std::string::npos)
      << msg;
}

TEST_F(CheckpointFileTest, EveryTruncationIsDataLoss) {
  const std::string path = Tmp("cut.ckpt");
  const std::vector<uint8_t> good = SerializeCheckpoint(Sample());
  for (size_t n = 0; n < good.size(); ++n) {
    WriteBytes(path, std::vector<uint8_t>(good.begin(), good.begin() + n));
    SCOPED_TRACE("first " + std::to_string(n) + " bytes");
    const std::string msg = ErrorMessage([&] { ReadCheckpointFile(path); });
    ExpectNamesFileAndOffset(msg, path);
    EXPECT_TRUE(std::regex_search(msg, std::regex("truncated|beyond the end|does not fit"))) << msg;
  }
  std::string msg = ErrorMessage([&] { ParseCheckpoint({}, "empty.ckpt"); });
  EXPECT_NE(msg.find("empty.ckpt: truncated at offset 0: expected the 8-byte magic"), std::string::npos) << msg;
  msg = ErrorMessage([&] { ParseCheckpoint(std::span(good).first(good.size() - 3), "c"); });
  EXPECT_NE(msg.find("c: truncated at offset " + std::to_string(good.size() - 3) +
                     ": expected the 8-byte checksum trailer"),
            std::string::npos)
      << msg;
  // Trailing bytes after the trailer.
  std::vector<uint8_t> longer = good;
  longer.push_back(0);
  msg = ErrorMessage([&] { ParseCheckpoint(longer, "c"); });
  EXPECT_NE(msg.find("c: 1 unexpected trailing bytes at offset " + std::to_string(good.size())), std::string::npos)
      << msg;
}

TEST_F(CheckpointFileTest, WrongMagicAndVersion) {
  std::vector<uint8_t> b = Builder().Raw("DTRAINCX").U32(1).U32(0).Seal();
  std::string msg = ErrorMessage([&] { ParseCheckpoint(b, "x.ckpt"); });
  EXPECT_NE(msg.find("x.ckpt: bad magic 'DTRAINCX' at offset 0: expected 'DTRAINCK'"), std::string::npos) << msg;
  msg = ErrorMessage([&] { ParseCheckpoint(Builder().Raw("\x89PNG").Seal(), "x.png"); });
  EXPECT_NE(msg.find("x.png: bad magic '\\x89PNG"), std::string::npos) << msg;
  msg = ErrorMessage([&] { ParseCheckpoint(Builder().Header(0, 2).Seal(), "v2.ckpt"); });
  EXPECT_NE(msg.find("v2.ckpt: unsupported checkpoint version 2 at offset 8: supported versions: 1"),
            std::string::npos)
      << msg;
  msg = ErrorMessage([&] { ParseCheckpoint(Builder().Header(0, 0).Seal(), "v0.ckpt"); });
  EXPECT_NE(msg.find("version 0 at offset 8"), std::string::npos) << msg;
}

// Damage a correct checksum would not catch (a buggy or hostile writer).
TEST_F(CheckpointFileTest, BadFieldsWithValidChecksum) {
  auto msg_of = [](std::vector<uint8_t> b) { return ErrorMessage([&] { ParseCheckpoint(b, "f.ckpt"); }); };
  std::string msg = msg_of(Builder().Header(2).Section(2, "params", "abcd").Section(2, "params", "efgh").Seal());
  EXPECT_NE(msg.find("f.ckpt: duplicate tensor name 'params' at offset 44: first at offset 21"), std::string::npos)
      << msg;
  // The same name in different kinds is fine.
  CheckpointData ok = ParseCheckpoint(Builder().Header(2).Section(1, "rng", "x").Section(3, "rng", "y").Seal(), "f");
  EXPECT_EQ(ok.meta.at("rng"), "x");
  msg = msg_of(Builder().Header(1).Section(2, "params", "abcde").Seal());
  EXPECT_NE(msg.find("tensor 'params' has 5 bytes at offset 35: expected a multiple of 4"), std::string::npos) << msg;
  msg = msg_of(Builder().Header(1).Section(7, "what", "").Seal());
  EXPECT_NE(msg.find("unknown kind 7 of section 0 'what' at offset 16: expected 1 (meta), 2 (tensor) or 3 (blob)"),
            std::string::npos)
      << msg;
  msg = msg_of(Builder().Header(1).Section(3, "b\xff", "").Seal());
  EXPECT_NE(msg.find("name of section 0 'b\\xff' is not UTF-8 at offset 22"), std::string::npos) << msg;
  msg = msg_of(Builder().Header(1).Section(1, "note", "ok \xed\xa0\x80").Seal());  // a UTF-16 surrogate
  EXPECT_NE(msg.find("value of meta 'note' is not UTF-8 at offset 36"), std::string::npos) << msg;
  msg = msg_of(Builder().Header(1).U8(1).U32(0).U64(1).Raw("x").Seal());
  EXPECT_NE(msg.find("bad name length 0 of section 0 at offset 17: expected 1..4096"), std::string::npos) << msg;
  msg = msg_of(Builder().Header(1).U8(1).U32(5000).Raw(std::string(5000, 'n')).U64(0).Seal());
  EXPECT_NE(msg.find("bad name length 5000"), std::string::npos) << msg;
  msg = msg_of(Builder().Header(1).U8(1).U32(100).Raw("abc").U64(0).Seal());
  EXPECT_NE(msg.find("name of section 0 (100 bytes) extends beyond the end of the file at offset 17"),
            std::string::npos)
      << msg;
  msg = msg_of(Builder().Header(1).U8(3).U32(1).Raw("b").U64(~uint64_t{0}).Seal());
  EXPECT_NE(msg.find("payload of section 0 'b' (18446744073709551615 bytes from offset 30) extends beyond the end "
                     "of the file at offset 22"),
            std::string::npos)
      << msg;
  msg = msg_of(Builder().Header(0xFFFFFFFFu).Seal());
  EXPECT_NE(msg.find("section count 4294967295 does not fit the file at offset 12"), std::string::npos) << msg;
  msg = msg_of(Builder().Header(0).Section(1, "extra", "").Seal());
  EXPECT_NE(msg.find("18 unexpected trailing bytes at offset 24: expected the file to end with the checksum trailer at offset 16"), std::string::npos) << msg;
}

// ~100 MB: the size of a ResNet-50 rank's params + momentum. Prints throughput
// (a figure, not an assertion: timings belong to benchmarks).
TEST_F(CheckpointFileTest, LargeRoundTripAndCrcThroughput) {
  using Clock = std::chrono::steady_clock;
  auto mbps = [](size_t bytes, Clock::duration d) {
    return bytes / 1e6 / std::chrono::duration<double>(d).count();
  };
  CheckpointData d;
  d.meta["model"] = "resnet50";
  std::vector<float>& p = d.tensors["params"];
  p.resize(25'000'000);
  for (size_t i = 0; i < p.size(); ++i) p[i] = float(i % 9973) * 0.001f;
  const size_t bytes = p.size() * sizeof(float);

  auto cpu_seconds = [] {
    timespec t{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return double(t.tv_sec) + double(t.tv_nsec) * 1e-9;
  };
  const double c0 = cpu_seconds();
  auto t0 = Clock::now();
  const uint32_t crc = Crc32c({reinterpret_cast<const uint8_t*>(p.data()), bytes});
  auto t1 = Clock::now();
  const double crc_cpu = cpu_seconds() - c0;  // unaffected by other processes on a busy machine
  const std::string path = Tmp("big.ckpt");
  WriteCheckpointFile(path, d);
  auto t2 = Clock::now();
  CheckpointData back = ReadCheckpointFile(path);
  auto t3 = Clock::now();
  EXPECT_EQ(back, d);
  EXPECT_NE(crc, 0u);
  std::printf("[ figures  ] CRC32C slice-by-8 over %.0f MB: %.0f MB/s wall, %.0f MB/s per CPU second; "
              "write+fsync %.0f MB/s; read+verify %.0f MB/s\n",
              bytes / 1e6, mbps(bytes, t1 - t0), bytes / 1e6 / crc_cpu, mbps(bytes, t2 - t1), mbps(bytes, t3 - t2));
  RecordProperty("crc32c_mb_per_s", std::to_string(mbps(bytes, t1 - t0)));
}

}  // namespace
}  // namespace dtrain::ckpt
