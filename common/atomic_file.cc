#include "common/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "common/error.h"

namespace dtrain {
namespace {

constexpr size_t kMaxIo = size_t{1} << 30;  // bytes per read(2) / write(2) call

[[noreturn]] void FailErrno(int e, const std::string& path, const std::string& what) {
  Fail(e == EBADF || e == EFAULT || e == EINVAL ? ErrorCode::kInternal : ErrorCode::kUnavailable,
       path + ": " + what + ": " + std::strerror(e));
}

// Closes and removes the temporary unless it was renamed into place.
struct TempFile {
  std::string path;
  int fd = -1;
  bool renamed = false;
  ~TempFile() {
    if (fd >= 0) ::close(fd);
    if (!renamed) ::unlink(path.c_str());
  }
};

// Buffered writes to the temporary; errors name the final path and the temporary.
class FdSink final : public AtomicFileSink {
 public:
  FdSink(const TempFile& tmp, const std::string& path, const std::string& temporary)
      : tmp_(tmp), path_(path), temporary_(temporary) {
    buf_.reserve(kBuffer);
  }
  void Write(const uint8_t* p, size_t n) override {
    if (buf_.size() + n <= kBuffer) {
      buf_.insert(buf_.end(), p, p + n);
      return;
    }
    Flush();
    if (n >= kBuffer) {
      WriteAll(p, n);
    } else {
      buf_.insert(buf_.end(), p, p + n);
    }
  }
  void Flush() {
    WriteAll(buf_.data(), buf_.size());
    buf_.clear();
  }

 private:
  static constexpr size_t kBuffer = size_t{1} << 20;
  void WriteAll(const uint8_t* p, size_t n) {
    while (n > 0) {
      const ssize_t w = ::write(tmp_.fd, p, std::min(n, kMaxIo));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0)
        FailErrno(errno, path_, "cannot write " + temporary_ + " (" + std::to_string(written_) + " bytes written)");
      p += w;
      n -= static_cast<size_t>(w);
      written_ += static_cast<uint64_t>(w);
    }
  }
  const TempFile& tmp_;
  const std::string& path_;
  const std::string& temporary_;
  std::vector<uint8_t> buf_;
  uint64_t written_ = 0;
};

}  // namespace

void WriteFileAtomic(const std::string& path, const char* what,
                     const std::function<void(AtomicFileSink&)>& produce) {
  namespace fs = std::filesystem;
  const fs::path parent = fs::path(path).parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    fs::create_directories(parent, ec);
    if (ec) Fail(ErrorCode::kUnavailable, path + ": cannot create directory " + parent.string() + ": " + ec.message());
  }
  TempFile tmp{path + ".tmp." + std::to_string(::getpid())};
  const std::string temporary = std::string("temporary ") + what + " " + tmp.path;
  tmp.fd = ::open(tmp.path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (tmp.fd < 0) {
    const int e = errno;
    tmp.renamed = true;  // nothing of ours to remove
    FailErrno(e, path, "cannot create " + temporary);
  }
  FdSink sink(tmp, path, temporary);
  produce(sink);
  sink.Flush();
  if (::fsync(tmp.fd) != 0) FailErrno(errno, path, "cannot fsync " + temporary);
  const int fd = tmp.fd;
  tmp.fd = -1;
  if (::close(fd) != 0) FailErrno(errno, path, "cannot close " + temporary);
  if (::rename(tmp.path.c_str(), path.c_str()) != 0) FailErrno(errno, path, "cannot rename " + temporary + " over it");
  tmp.renamed = true;
  // Make the rename itself durable.
  const std::string dir = parent.empty() ? "." : parent.string();
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) FailErrno(errno, path, "cannot open directory " + dir + " to fsync it");
  const int rc = ::fsync(dfd);
  const int e = errno;
  ::close(dfd);
  if (rc != 0) FailErrno(e, path, "cannot fsync directory " + dir);
}

void WriteFileAtomic(const std::string& path, std::span<const uint8_t> bytes, const char* what) {
  WriteFileAtomic(path, what, [&](AtomicFileSink& sink) { sink.Write(bytes.data(), bytes.size()); });
}

std::vector<uint8_t> ReadWholeFile(const std::string& path, const char* what) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int e = errno;
    if (e == ENOENT || e == ENOTDIR) Fail(ErrorCode::kNotFound, path + ": no such " + what);
    FailErrno(e, path, std::string("cannot open ") + what);
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) FailErrno(errno, path, std::string("cannot stat ") + what);
  if (!S_ISREG(st.st_mode)) Fail(ErrorCode::kUnavailable, path + ": not a regular file");
  std::vector<uint8_t> bytes(static_cast<size_t>(st.st_size));
  size_t got = 0;
  while (got < bytes.size()) {
    const ssize_t r = ::read(fd, bytes.data() + got, std::min(bytes.size() - got, kMaxIo));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) FailErrno(errno, path, std::string("cannot read ") + what + " at offset " + std::to_string(got));
    if (r == 0) break;  // shrank meanwhile: the parser reports it as truncated
    got += static_cast<size_t>(r);
  }
  bytes.resize(got);
  return bytes;
}

}  // namespace dtrain
