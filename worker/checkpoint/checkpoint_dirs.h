// A job's checkpoint folder holds one "step-NNNNNNNNN" folder per kept
// checkpoint. The trainer writes and prunes them; `dtrain export` finds one.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace dtrain::ckpt {

// <job_dir>/step-<step, 9 digits>.
std::string StepDirPath(const std::string& job_dir, int64_t step);
// The step folders under job_dir as (step, path), newest first; none when
// job_dir does not exist. Other entries are ignored.
std::vector<std::pair<int64_t, std::string>> ListStepDirs(const std::string& job_dir);

}  // namespace dtrain::ckpt
