// TensorboardLog: one TensorBoard event file of scalar points, written by rank
// 0 of a training job (TrainEnv::tensorboard_dir) so `tensorboard --logdir`
// shows the run while it trains.
//
// The file is DIR/events.out.tfevents.<unix seconds>.<host> (".1", ".2", ...
// appended when that name exists already: an existing file is never
// overwritten). It is TFRecord-framed: per record, the u64 little-endian data
// length, the masked CRC32C of those 8 bytes, the data, the masked CRC32C of
// the data (masked = ((crc >> 15) | (crc << 17)) + 0xa282ead8). The data is a
// serialized tensorboard.Event (proto/tensorboard_event.proto): first one with
// file_version "brain.Event:2", then one per Scalar with a one-value summary.
// Every record is flushed when written, so a crash loses nothing logged.
// Errors: a directory or file that cannot be created throws
// Error(kInvalidArgument) naming the path; a failed write Error(kInternal).
// Not thread-safe.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace dtrain::trainer {

class TensorboardLog {
 public:
  // Creates `dir` (and its parents) and the event file in it; `host` goes into
  // the file name (TensorboardLog::LocalHost() for this machine's name).
  TensorboardLog(const std::string& dir, const std::string& host);
  ~TensorboardLog();
  TensorboardLog(const TensorboardLog&) = delete;
  TensorboardLog& operator=(const TensorboardLog&) = delete;

  // One point of the series `tag` (e.g. "train/loss") at `step`; `wall_time`
  // in unix seconds. The value is stored as a float32, as TensorBoard's
  // simple_value is.
  void Scalar(const std::string& tag, int64_t step, double value, double wall_time);

  const std::string& path() const { return path_; }

  // This machine's host name ("localhost" when it cannot be read).
  static std::string LocalHost();
  // The TFRecord CRC mask of a CRC32C.
  static uint32_t MaskCrc(uint32_t crc);

 private:
  void WriteRecord(std::string_view data);

  std::string path_;
  std::FILE* file_ = nullptr;
};

}  // namespace dtrain::trainer
