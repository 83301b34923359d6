// StateDirLock: one coordinator per --state-dir. An exclusive flock on
// DIR/coordinator.lock, held for the coordinator's lifetime (released by the
// kernel when the process dies, even by SIGKILL), with the holder's pid
// written into the file. A second coordinator on the same directory fails
// with Error(kUnavailable) naming the directory and the holder's pid.
#pragma once

#include <string>

namespace dtrain::coordinator {

class StateDirLock {
 public:
  explicit StateDirLock(const std::string& dir);  // creates dir if missing
  ~StateDirLock();
  StateDirLock(const StateDirLock&) = delete;
  StateDirLock& operator=(const StateDirLock&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
};

}  // namespace dtrain::coordinator
