#include "worker/checkpoint/checkpoint_dirs.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>

namespace dtrain::ckpt {

namespace fs = std::filesystem;

std::string StepDirPath(const std::string& job_dir, int64_t step) {
  char name[32];
  std::snprintf(name, sizeof(name), "step-%09lld", static_cast<long long>(step));
  return (fs::path(job_dir) / name).string();
}

std::vector<std::pair<int64_t, std::string>> ListStepDirs(const std::string& job_dir) {
  std::vector<std::pair<int64_t, std::string>> dirs;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(job_dir, ec)) {
    long long step = 0;
    char tail = 0;
    if (e.is_directory(ec) && std::sscanf(e.path().filename().c_str(), "step-%lld%c", &step, &tail) == 1) {
      dirs.emplace_back(step, e.path().string());
    }
  }
  std::sort(dirs.begin(), dirs.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  return dirs;
}

}  // namespace dtrain::ckpt
