// Whole files written atomically and read in one piece (the checkpoint and
// safetensors formats share these).
//
// WriteFileAtomic: creates missing parent directories, writes path +
// ".tmp.<pid>", fsyncs it, renames it over `path` and fsyncs the directory.
// A failure leaves any previous file at `path` untouched and no temporary
// behind. Throws Error(kUnavailable) "<path>: cannot <step> ...: <errno text>"
// naming the temporary where it is involved, Error(kInternal) for EBADF,
// EFAULT or EINVAL. `what` names the kind of file in messages ("checkpoint",
// "safetensors file").
//
// ReadWholeFile: Error(kNotFound) "<path>: no such <what>" when it or a parent
// does not exist, Error(kUnavailable) for a file that is not regular or cannot
// be opened or read (Error(kInternal) as above). A file that shrinks while it
// is read comes back short, for the format's parser to call truncated.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

namespace dtrain {

// Buffered writes to the temporary, for formats written as they are encoded.
class AtomicFileSink {
 public:
  virtual void Write(const uint8_t* p, size_t n) = 0;

 protected:
  ~AtomicFileSink() = default;
};

// `produce` writes the contents to the sink; an exception from it (or from
// the sink) removes the temporary and leaves `path` as it was.
void WriteFileAtomic(const std::string& path, const char* what,
                     const std::function<void(AtomicFileSink&)>& produce);
void WriteFileAtomic(const std::string& path, std::span<const uint8_t> bytes, const char* what);

std::vector<uint8_t> ReadWholeFile(const std::string& path, const char* what);

}  // namespace dtrain
