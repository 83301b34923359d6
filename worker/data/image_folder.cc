// OpenImageFolder (worker/data/image_records.h): torchvision's ImageFolder
// listing, with readdir and the directory entry's d_type (a stat only for
// symlinks and file systems that report DT_UNKNOWN), one thread per few class
// folders, and the paths packed into one string (1.28 M records ~ 40 MB).
// Like torchvision 0.14's make_dataset, a class folder is walked recursively
// (os.walk(followlinks=True)): its folders in sorted path order, each one's
// files sorted by name.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <exception>
#include <thread>

#include "common/error.h"
#include "worker/data/image_records.h"

namespace dtrain::data {
namespace {

constexpr const char* kExtensions[] = {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"};
constexpr const char* kExtensionList = ".JPEG/.jpg/.png (or .jpeg .ppm .bmp .pgm .tif .tiff .webp, any case)";

bool HasImageExtension(std::string_view name) {
  for (std::string_view ext : kExtensions) {
    if (name.size() < ext.size()) continue;
    bool same = true;
    for (size_t i = 0; i < ext.size() && same; ++i) {
      const char c = name[name.size() - ext.size() + i];
      same = (c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c) == ext[i];
    }
    if (same) return true;
  }
  return false;
}

std::string Errno(int err) { return std::strerror(err); }

struct Entry {
  std::string name;
  bool dir = false;
};

// The entries of `path` except "." and "..", with whether each is a folder
// (symlinks followed, as Python's DirEntry.is_dir()).
std::vector<Entry> ListDir(const std::string& path) {
  DIR* d = opendir(path.c_str());
  if (!d) {
    const int err = errno;
    Fail(err == ENOENT ? ErrorCode::kNotFound : ErrorCode::kUnavailable,
         path + ": cannot list the folder: " + Errno(err));
  }
  std::vector<Entry> out;
  errno = 0;
  while (const dirent* e = readdir(d)) {
    const char* n = e->d_name;
    if (n[0] == '.' && (n[1] == '\0' || (n[1] == '.' && n[2] == '\0'))) continue;
    Entry entry{n, e->d_type == DT_DIR};
    if (e->d_type == DT_LNK || e->d_type == DT_UNKNOWN) {
      struct stat st;
      entry.dir = ::stat((path + "/" + n).c_str(), &st) == 0 && S_ISDIR(st.st_mode);
    }
    out.push_back(std::move(entry));
    errno = 0;
  }
  const int err = errno;
  closedir(d);
  if (err) Fail(ErrorCode::kUnavailable, path + ": reading the folder failed: " + Errno(err));
  return out;
}

// One class folder's image files as paths relative to the class folder, in
// torchvision's order (sorted(os.walk(...)), then sorted file names).
std::vector<std::string> ListClass(const std::string& class_dir) {
  std::vector<std::string> folders{""};  // relative paths: "" and "/sub", "/sub/x", ...
  for (size_t k = 0; k < folders.size(); ++k) {
    if (folders.size() > 100000)
      Fail(ErrorCode::kInvalidArgument, class_dir + ": more than 100000 sub-folders (a symlink loop?)");
    for (const Entry& e : ListDir(class_dir + folders[k]))
      if (e.dir) folders.push_back(folders[k] + "/" + e.name);
  }
  std::sort(folders.begin(), folders.end());  // os.walk's roots, sorted as strings
  std::vector<std::string> files;
  for (const std::string& f : folders) {
    std::vector<std::string> names;
    for (Entry& e : ListDir(class_dir + f))
      if (!e.dir && HasImageExtension(e.name)) names.push_back(std::move(e.name));
    std::sort(names.begin(), names.end());
    for (const std::string& n : names) files.push_back(f.empty() ? n : f.substr(1) + "/" + n);
  }
  return files;
}

class FolderRecords final : public ImageRecords {
 public:
  FolderRecords(std::string root, std::vector<std::string> classes, std::string paths, std::vector<uint64_t> ends,
                std::vector<int32_t> labels)
      : root_(std::move(root)),
        classes_(std::move(classes)),
        paths_(std::move(paths)),
        ends_(std::move(ends)),
        labels_(std::move(labels)) {}

  int64_t size() const override { return static_cast<int64_t>(labels_.size()); }
  const std::vector<std::string>& class_names() const override { return classes_; }
  int32_t label(int64_t i) const override {
    Check(i);
    return labels_[static_cast<size_t>(i)];
  }

  std::string Describe(int64_t i) const override {
    Check(i);
    const uint64_t begin = i == 0 ? 0 : ends_[i - 1];
    return root_ + paths_.substr(begin, ends_[i] - begin);
  }

  void Read(int64_t i, std::vector<uint8_t>* out) const override {
    out->clear();
    const std::string path = Describe(i);
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      const int err = errno;
      Fail(err == ENOENT || err == ENOTDIR ? ErrorCode::kNotFound : ErrorCode::kUnavailable,
           path + ": cannot open record " + std::to_string(i) + ": " + Errno(err) +
               (err == ENOENT ? " (it was listed when the folder was opened)" : ""));
    }
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      const int err = errno;
      ::close(fd);
      Fail(ErrorCode::kUnavailable, path + ": fstat failed: " + Errno(err));
    }
    std::vector<uint8_t> bytes(static_cast<size_t>(st.st_size));
    size_t got = 0;
    while (got < bytes.size()) {
      const ssize_t r = ::pread(fd, bytes.data() + got, bytes.size() - got, static_cast<off_t>(got));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) {
        const int err = r < 0 ? errno : 0;
        ::close(fd);
        Fail(ErrorCode::kDataLoss, path + " at byte offset " + std::to_string(got) + ": " +
                                       (err ? "read failed: " + Errno(err)
                                            : "short read (the file shrank from " + std::to_string(bytes.size()) +
                                                  " bytes while it was read)"));
      }
      got += static_cast<size_t>(r);
    }
    ::close(fd);
    *out = std::move(bytes);
  }

 private:
  void Check(int64_t i) const {
    if (i < 0 || i >= size())
      Fail(ErrorCode::kInvalidArgument,
           root_ + ": record " + std::to_string(i) + " is out of range [0, " + std::to_string(size()) + ")");
  }

  std::string root_;  // the folder with a trailing '/'
  std::vector<std::string> classes_;
  std::string paths_;           // "class/file" of every record, back to back
  std::vector<uint64_t> ends_;  // record i's path is paths_[ends_[i-1], ends_[i])
  std::vector<int32_t> labels_;
};

}  // namespace

std::unique_ptr<ImageRecords> OpenImageFolder(const std::string& dir) {
  const std::string layout = "an ImageFolder is DIR/<class>/<image>, e.g. train/n01440764/n01440764_10026.JPEG";
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) {
    const int err = errno;
    Fail(err == ENOENT || err == ENOTDIR ? ErrorCode::kNotFound : ErrorCode::kUnavailable,
         dir + ": no such image folder (" + Errno(err) + "); " + layout);
  }
  if (!S_ISDIR(st.st_mode)) Fail(ErrorCode::kInvalidArgument, dir + ": not a folder; " + layout);

  std::vector<std::string> classes;
  int64_t loose_images = 0;
  for (Entry& e : ListDir(dir)) {
    if (e.dir)
      classes.push_back(std::move(e.name));
    else if (HasImageExtension(e.name))
      ++loose_images;
  }
  if (classes.empty()) {
    Fail(ErrorCode::kInvalidArgument,
         dir + ": no class folders; " + layout +
             (loose_images ? " (found " + std::to_string(loose_images) +
                                 " images directly in it: move them into one folder per class)"
                           : ""));
  }
  std::sort(classes.begin(), classes.end());  // byte order, as Python's sorted()
  if (classes.size() > static_cast<size_t>(INT32_MAX)) Fail(ErrorCode::kInvalidArgument, dir + ": too many classes");

  const std::string root = dir.back() == '/' ? dir : dir + "/";
  // List the classes on a few threads (network file systems answer slowly per
  // folder); results land by class index, so the order is not thread timing's.
  std::vector<std::vector<std::string>> files(classes.size());
  std::vector<std::exception_ptr> errors(classes.size());
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t c; (c = next++) < classes.size();) {
      try {
        files[c] = ListClass(root + classes[c]);
      } catch (...) {
        errors[c] = std::current_exception();
      }
    }
  };
  const size_t threads = std::min<size_t>({8, classes.size(), std::max(1u, std::thread::hardware_concurrency())});
  std::vector<std::thread> pool;
  for (size_t t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);  // the first failing class, by index

  std::vector<std::string> empty;
  size_t total = 0, chars = 0;
  for (size_t c = 0; c < classes.size(); ++c) {
    if (files[c].empty()) empty.push_back("'" + classes[c] + "' (" + root + classes[c] + ")");
    total += files[c].size();
    for (const auto& f : files[c]) chars += classes[c].size() + 1 + f.size();
  }
  if (!empty.empty()) {
    std::string names;
    for (size_t k = 0; k < empty.size() && k < 5; ++k) names += (k ? ", " : "") + empty[k];
    if (empty.size() > 5) names += " and " + std::to_string(empty.size() - 5) + " more";
    Fail(ErrorCode::kInvalidArgument, dir + ": class " + names + (empty.size() == 1 ? " has" : " have") +
                                          " no images; each class folder needs at least one " + kExtensionList +
                                          " file, as torchvision's ImageFolder (other files are ignored)");
  }

  std::string paths;
  paths.reserve(chars);
  std::vector<uint64_t> ends;
  std::vector<int32_t> labels;
  ends.reserve(total);
  labels.reserve(total);
  for (size_t c = 0; c < classes.size(); ++c) {
    for (const auto& f : files[c]) {
      paths.append(classes[c]).append(1, '/').append(f);
      ends.push_back(paths.size());
      labels.push_back(static_cast<int32_t>(c));
    }
    std::vector<std::string>().swap(files[c]);
  }
  return std::make_unique<FolderRecords>(root, std::move(classes), std::move(paths), std::move(ends),
                                         std::move(labels));
}

}  // namespace dtrain::data
