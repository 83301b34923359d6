#include "common/logging.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "common/error.h"

namespace dtrain {

void InitLogging(const std::string& role, const std::string& level) {
  auto lvl = spdlog::level::from_str(level);
  if (lvl == spdlog::level::off && level != "off") {
    Fail(ErrorCode::kInvalidArgument,
         "--log-level '" + level + "' is not allowed; allowed: trace, debug, info, warn, error");
  }
  auto logger = spdlog::stderr_color_mt(role);
  logger->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%n] [%^%l%$] %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(lvl);
  spdlog::flush_on(spdlog::level::info);
}

}  // namespace dtrain
