// Logging setup shared by the daemons: spdlog to stderr with the process role
// in every line. Call InitLogging once from main().
#pragma once

#include <string>

namespace dtrain {

// level: trace | debug | info | warn | error. Throws Error on an unknown level.
void InitLogging(const std::string& role, const std::string& level = "info");

}  // namespace dtrain
