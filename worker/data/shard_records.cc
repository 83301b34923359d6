// OpenShards (worker/data/image_records.h): a split's .dtshard files
// (worker/data/shard_format.h). Opening reads each shard's 64-byte header and
// its index, checks them and the set (every shard 0..M-1 present once, counts
// and class names consistent), and keeps one descriptor per shard open; Read(i)
// is one pread of the record's bytes followed by its CRC32C check.
#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>

#include "common/crc32c.h"
#include "common/error.h"
#include "worker/data/image_records.h"
#include "worker/data/shard_format.h"

namespace dtrain::data {
namespace {

std::string Errno() { return std::strerror(errno); }
std::string Num(uint64_t v) { return std::to_string(v); }
std::string Hex(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

// Reads exactly `size` bytes at `offset`; false on a short read (errno 0) or an error.
bool PreadFull(int fd, uint8_t* out, size_t size, uint64_t offset, size_t* got) {
  *got = 0;
  while (*got < size) {
    const ssize_t r = ::pread(fd, out + *got, size - *got, static_cast<off_t>(offset + *got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      if (r == 0) errno = 0;
      return false;
    }
    *got += static_cast<size_t>(r);
  }
  return true;
}

// One descriptor per shard: raise the soft limit towards the hard one when
// the set needs more than it allows.
void EnsureDescriptors(size_t shards, const std::string& dir) {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
  const rlim_t need = static_cast<rlim_t>(shards) + 256;
  if (lim.rlim_cur != RLIM_INFINITY && lim.rlim_cur < need) {
    lim.rlim_cur = (lim.rlim_max == RLIM_INFINITY || lim.rlim_max >= need) ? need : lim.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &lim);
    ::getrlimit(RLIMIT_NOFILE, &lim);
    if (lim.rlim_cur != RLIM_INFINITY && lim.rlim_cur < need) {
      Fail(ErrorCode::kUnavailable, dir + ": " + Num(shards) + " shards need " + Num(need) +
                                        " open files, the limit is " + Num(lim.rlim_cur) +
                                        "; raise it (ulimit -n) or repack with a larger --shard-mb");
    }
  }
}

class ShardRecords final : public ImageRecords {
 public:
  ~ShardRecords() override {
    for (const Shard& s : shards_)
      if (s.fd >= 0) ::close(s.fd);
  }

  int64_t size() const override { return static_cast<int64_t>(entries_.size()); }
  const std::vector<std::string>& class_names() const override { return classes_; }
  int32_t label(int64_t i) const override { return entries_[Check(i)].label; }

  std::string Describe(int64_t i) const override {
    const ShardEntry& e = entries_[Check(i)];
    return shards_[ShardOf(i)].path + "@" + Num(e.offset);
  }

  void Read(int64_t i, std::vector<uint8_t>* out) const override {
    const ShardEntry& e = entries_[Check(i)];
    const Shard& s = shards_[ShardOf(i)];
    out->resize(e.length);
    size_t got = 0;
    if (!PreadFull(s.fd, out->data(), e.length, e.offset, &got)) {
      const std::string why = errno ? "read failed: " + Errno()
                                    : "the file ends after " + Num(e.offset + got) +
                                          " bytes (truncated after it "
                                          "was opened?)";
      out->clear();
      Fail(ErrorCode::kDataLoss, s.path + " at byte offset " + Num(e.offset + got) + ": record " + Num(i) + " (label " +
                                     Num(e.label) + ", " + Num(e.length) + " bytes): " + why);
    }
    const uint32_t actual = Crc32c(*out);
    if (actual != e.crc) {
      out->clear();
      Fail(ErrorCode::kDataLoss, s.path + " at byte offset " + Num(e.offset) + ": record " + Num(i) + " (label " +
                                     Num(e.label) + ") fails its CRC32C (" + Num(e.length) + " bytes, stored " +
                                     Hex(e.crc) + " in the index, computed " + Hex(actual) +
                                     "); the shard is damaged — restore it from a good copy or repack it");
    }
  }

  struct Shard {
    std::string path;
    int fd = -1;
    uint64_t first = 0;
  };
  std::vector<Shard> shards_;
  std::vector<ShardEntry> entries_;  // every record of the split, in order
  std::vector<std::string> classes_;

 private:
  size_t Check(int64_t i) const {
    if (i < 0 || i >= size()) {
      Fail(ErrorCode::kInvalidArgument,
           "record " + std::to_string(i) + " is out of range [0, " + Num(entries_.size()) + ")");
    }
    return static_cast<size_t>(i);
  }
  size_t ShardOf(int64_t i) const {
    auto it = std::upper_bound(shards_.begin(), shards_.end(), static_cast<uint64_t>(i),
                               [](uint64_t v, const Shard& s) { return v < s.first; });
    return static_cast<size_t>(it - shards_.begin()) - 1;
  }
};

}  // namespace

std::unique_ptr<ImageRecords> OpenShards(const std::string& dir, const std::string& split) {
  const std::string pattern = split + "-NNNNN-of-MMMMM" + kShardSuffix;
  DIR* d = ::opendir(dir.c_str());
  if (!d) {
    const int err = errno;
    Fail(err == ENOENT || err == ENOTDIR ? ErrorCode::kNotFound : ErrorCode::kUnavailable,
         dir + ": cannot open the shard folder: " + std::strerror(err));
  }
  std::map<uint32_t, std::map<uint32_t, std::string>> sets;  // shard count -> shard -> name
  while (const dirent* e = ::readdir(d)) {
    uint32_t n, m;
    if (ParseShardFileName(e->d_name, split, &n, &m)) sets[m][n] = e->d_name;
  }
  ::closedir(d);
  if (sets.empty()) {
    Fail(ErrorCode::kNotFound, dir + ": no " + pattern +
                                   " files; pack an ImageFolder with "
                                   "`dtrain-pack --input IMAGENET --output " +
                                   dir + " --splits " + split + "`");
  }
  if (sets.size() > 1) {
    Fail(ErrorCode::kInvalidArgument, dir + ": shards of different packs of split '" + split + "' are mixed (" +
                                          sets.begin()->second.begin()->second + " and " +
                                          sets.rbegin()->second.begin()->second + "); keep one set");
  }
  const uint32_t count = sets.begin()->first;
  const auto& names = sets.begin()->second;
  for (uint32_t n = 0; n < count; ++n) {
    if (!names.count(n)) {
      Fail(ErrorCode::kNotFound, dir + ": shard " + ShardFileName(split, n, count) + " is missing (" +
                                     Num(names.size()) + " of " + Num(count) +
                                     " present); an interrupted pack or "
                                     "copy? copy the missing shards or repack");
    }
  }
  if (names.size() > count) {
    Fail(ErrorCode::kInvalidArgument, dir + ": " + names.rbegin()->second + " is numbered beyond its set's " +
                                          Num(count) + " shards; remove it or repack");
  }
  EnsureDescriptors(count, dir);

  auto records = std::make_unique<ShardRecords>();
  records->shards_.reserve(count);
  std::string first_path;
  for (const auto& [n, name] : names) {
    const std::string path = dir + "/" + name;
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) Fail(ErrorCode::kUnavailable, path + ": cannot open: " + Errno());
    records->shards_.push_back({path, fd, records->entries_.size()});
    struct stat st;
    if (::fstat(fd, &st) != 0) Fail(ErrorCode::kUnavailable, path + ": fstat failed: " + Errno());
    const auto file_size = static_cast<uint64_t>(st.st_size);
    std::vector<uint8_t> head(std::min<uint64_t>(file_size, kShardHeaderBytes));
    size_t got = 0;
    if (!PreadFull(fd, head.data(), head.size(), 0, &got))
      Fail(ErrorCode::kDataLoss, path + ": reading the header failed: " + Errno());
    const ShardHeader h = ParseShardHeader(head, file_size, path);
    if (h.shard != n || h.shards != count) {
      Fail(ErrorCode::kDataLoss, path + ": its header says shard " + Num(h.shard) + " of " + Num(h.shards) +
                                     ", its name " + Num(n) + " of " + Num(count) + "; was it renamed? repack");
    }
    if (h.first != records->entries_.size()) {
      Fail(ErrorCode::kDataLoss, path + ": its header says its first record is " + Num(h.first) + ", but shards 0.." +
                                     std::to_string(int64_t{n} - 1) + " hold " + Num(records->entries_.size()) +
                                     " records; shards of different packs mixed? repack");
    }
    std::vector<uint8_t> tail(file_size - h.index_offset);
    if (!PreadFull(fd, tail.data(), tail.size(), h.index_offset, &got)) {
      Fail(ErrorCode::kDataLoss, path + " at byte offset " + Num(h.index_offset + got) +
                                     ": reading the index failed: " + (errno ? Errno() : "the file ended early"));
    }
    ShardIndex index = ParseShardIndex(h, tail, path);
    if (n == 0) {
      records->classes_ = std::move(index.class_names);
      first_path = path;
    } else if (index.class_names != records->classes_) {
      size_t c = 0;
      while (c < index.class_names.size() && c < records->classes_.size() &&
             index.class_names[c] == records->classes_[c])
        ++c;
      Fail(ErrorCode::kDataLoss, path + ": its class names differ from " + first_path + "'s from class " + Num(c) +
                                     " on (" + Num(index.class_names.size()) + " vs " + Num(records->classes_.size()) +
                                     " classes); shards of different packs mixed? "
                                     "repack");
    }
    records->entries_.insert(records->entries_.end(), index.entries.begin(), index.entries.end());
  }
  return records;
}

}  // namespace dtrain::data
