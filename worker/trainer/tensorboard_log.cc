#include "worker/trainer/tensorboard_log.h"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "common/crc32c.h"
#include "common/error.h"
#include "proto/tensorboard_event.pb.h"

namespace dtrain::trainer {
namespace {

double UnixSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

uint32_t MaskedCrc(const void* data, size_t n) {
  return TensorboardLog::MaskCrc(Crc32c({static_cast<const uint8_t*>(data), n}));
}

void PutLe(uint8_t* out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out[i] = uint8_t(v >> (8 * i));
}

}  // namespace

uint32_t TensorboardLog::MaskCrc(uint32_t crc) {
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

std::string TensorboardLog::LocalHost() {
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) != 0 || name[0] == '\0') return "localhost";
  return name;
}

TensorboardLog::TensorboardLog(const std::string& dir, const std::string& host) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec || !std::filesystem::is_directory(dir)) {
    Fail(ErrorCode::kInvalidArgument, "TensorBoard log directory " + dir + " cannot be created: " +
                                          (ec ? ec.message() : "it is not a directory"));
  }
  const double now = UnixSeconds();
  const std::string base = dir + "/events.out.tfevents." + std::to_string(int64_t(now)) + "." + host;
  for (int n = 0; !file_; ++n) {
    path_ = n == 0 ? base : base + "." + std::to_string(n);
    file_ = std::fopen(path_.c_str(), "wbx");  // x: never overwrite another run's file
    if (!file_ && (errno != EEXIST || n >= 1000)) {
      Fail(ErrorCode::kInvalidArgument,
           "TensorBoard event file " + path_ + " cannot be created: " + std::strerror(errno));
    }
  }
  tensorboard::Event first;
  first.set_wall_time(now);
  first.set_file_version("brain.Event:2");
  WriteRecord(first.SerializeAsString());
}

TensorboardLog::~TensorboardLog() {
  if (file_) std::fclose(file_);
}

void TensorboardLog::Scalar(const std::string& tag, int64_t step, double value, double wall_time) {
  tensorboard::Event e;
  e.set_wall_time(wall_time);
  e.set_step(step);
  tensorboard::Summary::Value* v = e.mutable_summary()->add_value();
  v->set_tag(tag);
  v->set_simple_value(float(value));
  WriteRecord(e.SerializeAsString());
}

void TensorboardLog::WriteRecord(std::string_view data) {
  uint8_t header[12];
  PutLe(header, data.size(), 8);
  PutLe(header + 8, MaskedCrc(header, 8), 4);
  uint8_t footer[4];
  PutLe(footer, MaskedCrc(data.data(), data.size()), 4);
  if (std::fwrite(header, 1, sizeof(header), file_) != sizeof(header) ||
      std::fwrite(data.data(), 1, data.size(), file_) != data.size() ||
      std::fwrite(footer, 1, sizeof(footer), file_) != sizeof(footer) || std::fflush(file_) != 0) {
    Fail(ErrorCode::kInternal, "TensorBoard event file " + path_ + ": write failed: " + std::strerror(errno));
  }
}

}  // namespace dtrain::trainer
