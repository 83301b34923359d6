#include "coordinator/state_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>

#include "common/error.h"

namespace dtrain::coordinator {

StateDirLock::StateDirLock(const std::string& dir) : path_(dir + "/coordinator.lock") {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    Fail(ErrorCode::kInvalidArgument, "--state-dir " + dir + ": cannot open " + path_ + ": " + std::strerror(errno));
  }
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    char buf[32] = {0};
    const ssize_t n = ::pread(fd_, buf, sizeof(buf) - 1, 0);
    std::string holder = n > 0 ? std::string(buf, size_t(n)) : "";
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
    ::close(fd_);
    fd_ = -1;
    if (err == EWOULDBLOCK) {
      Fail(ErrorCode::kUnavailable, "--state-dir " + dir + " is in use by another coordinator (pid " +
                                        (holder.empty() ? "unknown" : holder) + ", lock " + path_ +
                                        "): stop it first, or give this one another --state-dir");
    }
    Fail(ErrorCode::kInvalidArgument, "--state-dir " + dir + ": cannot lock " + path_ + ": " + std::strerror(err));
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, pid.data(), pid.size(), 0) != ssize_t(pid.size())) {
    // The lock is what matters; the pid is only for the message.
  }
}

StateDirLock::~StateDirLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the flock
}

}  // namespace dtrain::coordinator
