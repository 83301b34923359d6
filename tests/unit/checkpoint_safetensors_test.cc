// safetensors reader/writer on valid files: round trips, the exact bytes the
// format specifies, a file written by hand in Python (numpy) read value for
// value, the reference implementation (when installed), bad writer input, and
// atomic replacement. Malformed files: checkpoint_safetensors_malformed_test.cc.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "common/error.h"
#include "tests/unit/checkpoint_test_util.h"
#include "worker/checkpoint/safetensors.h"

namespace dtrain::ckpt {
namespace {

namespace fs = std::filesystem;
using test::ErrorMessage;
using test::ReadBytes;
using test::U64;
std::vector<uint8_t> File(const std::string& header, size_t data = 0) { return test::SafetensorsBytes(header, data); }
using test::Sample;


std::string ShapeJson(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

// Compares `got` with lines "NAME DTYPE [SHAPE] v v v" (float32 bit patterns or int64 values).
void ExpectMatches(const SafetensorsFile& got, const std::string& expected_path) {
  std::ifstream in(expected_path);
  std::string line;
  size_t lines = 0;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string name, dtype, shape;
    ls >> name >> dtype >> shape;
    SCOPED_TRACE(name);
    ++lines;
    ASSERT_TRUE(got.tensors.count(name));
    const SafeTensor& t = got.tensors.at(name);
    EXPECT_EQ(t.dtype, dtype);
    EXPECT_EQ(ShapeJson(t.shape), shape);
    std::vector<int64_t> want;
    for (int64_t v; ls >> v;) want.push_back(v);
    ASSERT_EQ(int64_t(want.size()), t.numel());
    if (dtype == "I64") {
      EXPECT_EQ(t.i64, want);
      EXPECT_TRUE(t.f32.empty());
      continue;
    }
    ASSERT_EQ(t.f32.size(), want.size());
    EXPECT_TRUE(t.i64.empty());
    for (size_t i = 0; i < want.size(); ++i)
      EXPECT_EQ(std::bit_cast<uint32_t>(t.f32[i]), uint32_t(want[i])) << i << ": " << t.f32[i];
  }
  EXPECT_EQ(lines, got.tensors.size());
}

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tmp_ = fs::temp_directory_path() / ("dtrain_safetensors_test_" + std::to_string(::getpid()));
    fs::remove_all(tmp_);
    fs::create_directories(tmp_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::permissions(tmp_ / "ro", fs::perms::owner_all, ec);
    fs::remove_all(tmp_);
  }
  std::string Tmp(const std::string& name) const { return (tmp_ / name).string(); }
  std::vector<std::string> Files(const fs::path& dir) const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }
  fs::path tmp_;
};


TEST_F(SafetensorsTest, RoundTripF32I64ScalarEmptyAndMetadata) {
  const SafetensorsFile f = Sample();
  EXPECT_EQ(f.tensors.at("bn1.num_batches_tracked").numel(), 1);
  EXPECT_EQ(f.tensors.at("empty").numel(), 0);
  const std::string path = Tmp("out/model.safetensors");  // parent created
  WriteSafetensorsFile(path, f);
  EXPECT_EQ(ReadSafetensorsFile(path), f);
  EXPECT_EQ(ReadBytes(path), SerializeSafetensors(f));
  EXPECT_EQ(ParseSafetensors(SerializeSafetensors(f), "mem"), f);
  EXPECT_EQ(Files(tmp_ / "out"), std::vector<std::string>{"model.safetensors"});
  // No metadata and no tensors: the smallest file, "{}" padded to 8 bytes.
  EXPECT_EQ(SerializeSafetensors({}), File("{}      "));
  EXPECT_EQ(ParseSafetensors(File("{}      "), "e"), SafetensorsFile{});
  EXPECT_EQ(ParseSafetensors(File("{\"__metadata__\":null}"), "null"), SafetensorsFile{});  // as the reference
}

// The layout checked by hand against the format description.
TEST_F(SafetensorsTest, BytesAreWhatTheSpecSays) {
  SafetensorsFile f;
  f.metadata["k"] = "v";
  f.tensors["b"] = {"I64", {}, {}, {7}};
  f.tensors["a"] = {"F32", {2}, {1.0f, -2.0f}, {}};
  const std::vector<uint8_t> b = SerializeSafetensors(f);
  const std::string json =
      "{\"__metadata__\":{\"k\":\"v\"},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
      "\"b\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[8,16]}}";
  const size_t n = (json.size() + 7) / 8 * 8;  // padded with spaces to a multiple of 8
  ASSERT_EQ(b.size(), 8 + n + 16);
  EXPECT_EQ(std::vector<uint8_t>(b.begin(), b.begin() + 8), U64(n));
  EXPECT_EQ(std::string(b.begin() + 8, b.begin() + 8 + n), json + std::string(n - json.size(), ' '));
  EXPECT_EQ((8 + n) % 8, 0u);
  const std::vector<uint8_t> data(b.begin() + 8 + n, b.end());
  EXPECT_EQ(data, (std::vector<uint8_t>{0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0, 7, 0, 0, 0, 0, 0, 0, 0}));
}

// A file made by Python without any safetensors library: struct.pack('<Q', n) + JSON + bytes,
// with F16 (all 65536 values), BF16 and F64 (float32 values computed by numpy), an unaligned data start,
// data in another order than the header, json.dumps spacing and an unknown field.
constexpr char kPythonWriter[] = R"PY(
import json, struct, sys
import numpy as np
out = sys.argv[1]
f16 = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.float16)  # every half, NaNs included
src = np.array([1.0, -3.14159, 1e-39, 3.0e38, -0.0, np.inf, np.nan, 0.1], np.float32)
bf16 = (src.view(np.uint32) >> 16).astype(np.uint16)
f64 = np.array([1e300, -1e300, 1e-300, 0.1, 2.0 ** -149, 16777217.0, np.pi], np.float64)
i64 = np.array([[-(2 ** 63), 2 ** 63 - 1], [0, -1]], np.int64)
f32 = np.arange(6, dtype=np.float32).reshape(2, 3) / np.float32(7)
with np.errstate(over="ignore"):
    tensors = {
        "h.f16": ("F16", f16, f16.astype("<f2").tobytes(), f16.astype(np.float32)),
        "b.bf16": ("BF16", bf16, bf16.astype("<u2").tobytes(), (bf16.astype(np.uint32) << 16).view(np.float32)),
        "d.f64": ("F64", f64, f64.astype("<f8").tobytes(), f64.astype(np.float32)),
        "i.i64": ("I64", i64, i64.astype("<i8").tobytes(), i64),
        "w.f32": ("F32", f32, f32.astype("<f4").tobytes(), f32),
        "s.scalar": ("F32", np.float32(3.5), np.float32(3.5).tobytes(), np.array(3.5, np.float32)),
        "z.empty": ("F32", np.zeros((0, 3), np.float32), b"", np.zeros((0, 3), np.float32)),
    }
header, data = {}, b""
for name in reversed(list(tensors)):
    dtype, arr, raw, _ = tensors[name]
    header[name] = {"dtype": dtype, "shape": list(np.shape(arr)), "data_offsets": [len(data), len(data) + len(raw)]}
    data += raw
header["w.f32"]["extra"] = {"ignored": [1, {"x": None}]}
header["__metadata__"] = {"format": "pt", "made by": "numpy " + np.__version__}
text = json.dumps(header).encode()
open(out + "/python.safetensors", "wb").write(struct.pack("<Q", len(text)) + text + data)
with open(out + "/expected.txt", "w") as f:
    for name, (dtype, arr, raw, want) in sorted(tensors.items()):
        v = np.asarray(want).reshape(-1)
        bits = v.view(np.uint32) if v.dtype == np.float32 else v
        f.write(name + " " + dtype + " " + json.dumps(list(np.shape(arr))).replace(" ", "") + " " +
                " ".join(str(int(b)) for b in bits) + "\n")
)PY";

bool RunPython(const std::string& script_path, const std::string& script, const std::string& args,
               const std::string& env = "") {
  std::ofstream(script_path) << script;
  return std::system((env + " /usr/bin/python3 " + script_path + " " + args).c_str()) == 0;
}

TEST_F(SafetensorsTest, ReadsAFileWrittenByHandInPython) {
  if (!RunPython(Tmp("check.py"), "import numpy\n", "")) GTEST_SKIP() << "/usr/bin/python3 with numpy is not available";
  ASSERT_TRUE(RunPython(Tmp("writer.py"), kPythonWriter, tmp_.string()));
  const SafetensorsFile got = ReadSafetensorsFile(Tmp("python.safetensors"));
  ExpectMatches(got, Tmp("expected.txt"));
  EXPECT_EQ(got.metadata.size(), 2u);
  EXPECT_EQ(got.metadata.at("format"), "pt");
  EXPECT_EQ(got.metadata.at("made by").rfind("numpy ", 0), 0u);
}

// With the reference implementation (deploy/install-deps.sh puts it in the
// source tree's .pydeps; DTRAIN_SAFETENSORS_PYTHONPATH=DIR points elsewhere):
// it loads what we write, and we read what it writes.
constexpr char kReferenceCheck[] = R"PY(
import json, sys
import numpy as np
from safetensors.numpy import load_file, save_file
def dump(tensors, path):
    with open(path, "w") as f:
        for name, dtype, v in sorted((n, {"float32": "F32", "int64": "I64"}[str(a.dtype)], a) for n, a in tensors.items()):
            bits = v.reshape(-1).view(np.uint32) if v.dtype == np.float32 else v.reshape(-1)
            f.write(name + " " + dtype + " " + json.dumps(list(v.shape)).replace(" ", "") + " " +
                    " ".join(str(int(b)) for b in bits) + "\n")
dump(load_file(sys.argv[1]), sys.argv[2])
ref = {"x": np.arange(12, dtype=np.float32).reshape(3, 4) / 3, "n": np.array(5, np.int64), "e": np.zeros((2, 0), np.float32)}
save_file(ref, sys.argv[3], metadata={"m": "n"})
dump(ref, sys.argv[4])
)PY";

TEST_F(SafetensorsTest, ReferenceImplementationAgrees) {
  const char* dir = std::getenv("DTRAIN_SAFETENSORS_PYTHONPATH");
  const std::string env = "PYTHONPATH=" + std::string(dir ? dir : DTRAIN_PYDEPS_DIR);
  if (!RunPython(Tmp("check.py"), "import numpy, safetensors\n", "2>/dev/null", env))
    GTEST_SKIP() << "the reference safetensors Python package is not importable from " << (dir ? dir : DTRAIN_PYDEPS_DIR)
                 << " (deploy/install-deps.sh installs it; or set DTRAIN_SAFETENSORS_PYTHONPATH)";
  const SafetensorsFile ours = Sample();
  WriteSafetensorsFile(Tmp("ours.safetensors"), ours);
  ASSERT_TRUE(RunPython(
      Tmp("ref.py"), kReferenceCheck,
      Tmp("ours.safetensors") + " " + Tmp("ours.txt") + " " + Tmp("ref.safetensors") + " " + Tmp("ref.txt"), env));
  ExpectMatches(ours, Tmp("ours.txt"));
  const SafetensorsFile ref = ReadSafetensorsFile(Tmp("ref.safetensors"));
  ExpectMatches(ref, Tmp("ref.txt"));
  EXPECT_EQ(ref.metadata, (std::map<std::string, std::string>{{"m", "n"}}));
}

TEST_F(SafetensorsTest, WriterRejectsWhatItCannotWrite) {
  auto rejected = [&](const std::string& name, SafeTensor t, const std::string& part) {
    SafetensorsFile f;
    f.tensors[name] = std::move(t);
    const std::string msg =
        ErrorMessage([&] { WriteSafetensorsFile(Tmp("w.safetensors"), f); }, ErrorCode::kInvalidArgument);
    EXPECT_NE(msg.find(part), std::string::npos) << msg;
  };
  rejected("h", {"F16", {1}, {1.0f}, {}}, "tensor 'h' has dtype 'F16': the writer supports F32 and I64");
  rejected("w", {"F32", {2, 3}, {1, 2, 3, 4, 5}, {}},
           "tensor 'w' (F32, shape [2, 3]) has 5 f32 and 0 i64 values: expected 6");
  rejected("n", {"I64", {}, {1.0f}, {1}}, "tensor 'n' (I64, shape []) has 1 f32 and 1 i64 values");
  rejected("d", {"F32", {-1}, {}, {}}, "tensor 'd' has shape [-1]");
  rejected("o", {"F32", {1 << 30, 1 << 30, 1 << 30}, {}, {}}, "tensor 'o' has shape");
  rejected("", {"F32", {}, {1.0f}, {}}, "tensor '': tensor names are non-empty and not \"__metadata__\"");
  rejected("__metadata__", {"F32", {}, {1.0f}, {}}, "tensor '__metadata__'");
  rejected("bad\xff", {"F32", {}, {1.0f}, {}}, "tensor name 'bad\\xff' is not UTF-8");
  SafetensorsFile f;
  f.metadata["k"] = "\xc0\x80";  // overlong NUL
  EXPECT_NE(ErrorMessage([&] { SerializeSafetensors(f); }, ErrorCode::kInvalidArgument).find("is not UTF-8"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(Tmp("w.safetensors")));
}

TEST_F(SafetensorsTest, MissingAndUnreadableFiles) {
  EXPECT_NE(ErrorMessage([&] { ReadSafetensorsFile(Tmp("nope")); }, ErrorCode::kNotFound).find(Tmp("nope")),
            std::string::npos);
  ErrorMessage([&] { ReadSafetensorsFile(tmp_.string()); }, ErrorCode::kUnavailable);  // a directory
}

// A failed write leaves the previous file intact and no temporary behind.
TEST_F(SafetensorsTest, FailedWritesKeepThePreviousFile) {
  const std::string path = Tmp("m.safetensors");
  WriteSafetensorsFile(path, Sample());
  const std::vector<uint8_t> before = ReadBytes(path);
  SafetensorsFile big;
  big.tensors["w"] = {"F32", {1 << 20}, std::vector<float>(1 << 20, 1.0f), {}};  // 4 MiB

  // The file size limit makes write(2) fail with EFBIG partway.
  struct rlimit old {};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old), 0);
  struct rlimit small = old;
  small.rlim_cur = 1 << 20;
  auto old_handler = signal(SIGXFSZ, SIG_IGN);
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
  std::string msg = ErrorMessage([&] { WriteSafetensorsFile(path, big); }, ErrorCode::kUnavailable);
  setrlimit(RLIMIT_FSIZE, &old);
  signal(SIGXFSZ, old_handler);
  EXPECT_NE(msg.find(path + ": cannot write temporary"), std::string::npos) << msg;
  EXPECT_NE(msg.find(std::strerror(EFBIG)), std::string::npos) << msg;
  EXPECT_EQ(ReadBytes(path), before);
  EXPECT_EQ(Files(tmp_), std::vector<std::string>{"m.safetensors"});

  // The temporary cannot be created (a directory squats its name).
  fs::create_directory(path + ".tmp." + std::to_string(::getpid()));
  msg = ErrorMessage([&] { WriteSafetensorsFile(path, big); }, ErrorCode::kUnavailable);
  EXPECT_NE(msg.find(std::strerror(EISDIR)), std::string::npos) << msg;
  EXPECT_EQ(ReadBytes(path), before);
  fs::remove(path + ".tmp." + std::to_string(::getpid()));

  // A directory that is not writable (root ignores permissions: checked as a user only).
  if (::geteuid() == 0) return;
  fs::create_directory(tmp_ / "ro");
  WriteSafetensorsFile(Tmp("ro/m.safetensors"), Sample());
  fs::permissions(tmp_ / "ro", fs::perms::owner_read | fs::perms::owner_exec);
  msg = ErrorMessage([&] { WriteSafetensorsFile(Tmp("ro/m.safetensors"), big); }, ErrorCode::kUnavailable);
  EXPECT_NE(msg.find(std::strerror(EACCES)), std::string::npos) << msg;
  EXPECT_EQ(ReadBytes(Tmp("ro/m.safetensors")), before);
  EXPECT_EQ(Files(tmp_ / "ro"), std::vector<std::string>{"m.safetensors"});
}

}  // namespace
}  // namespace dtrain::ckpt