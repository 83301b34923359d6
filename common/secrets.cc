#include "common/secrets.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/error.h"

namespace dtrain {
namespace {

std::string ReadWhole(const std::string& flag, const std::string& path) {
  const auto bad = [&](const std::string& why) {
    Fail(ErrorCode::kInvalidArgument, flag + " '" + path + "': " + why);
  };
  if (path.empty()) bad("no file name given");
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) bad("is a directory");
  std::ifstream in(path, std::ios::binary);
  if (!in) bad(std::string("cannot open: ") + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) bad(std::string("cannot read: ") + std::strerror(errno));
  return text.str();
}

std::string Trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

// A token goes into "authorization: Bearer <token>": visible ASCII only.
void CheckToken(const std::string& what, const std::string& token) {
  if (token.empty()) Fail(ErrorCode::kInvalidArgument, what + ": the token is empty");
  for (const unsigned char ch : token) {
    if (ch <= 0x20 || ch >= 0x7f) {
      Fail(ErrorCode::kInvalidArgument,
           what + ": the token must be one line of visible ASCII characters without spaces");
    }
  }
}

}  // namespace

std::string ReadPemFile(const std::string& flag, const std::string& path) {
  std::string text = ReadWhole(flag, path);
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) {
    Fail(ErrorCode::kInvalidArgument, flag + " '" + path + "': the file is empty");
  }
  if (text.find("-----BEGIN ") == std::string::npos) {
    Fail(ErrorCode::kInvalidArgument,
         flag + " '" + path + "': not a PEM file (no -----BEGIN line)");
  }
  return text;
}

std::string ReadTokenFile(const std::string& flag, const std::string& path) {
  std::string text = ReadWhole(flag, path);
  text = Trim(text.substr(0, text.find('\n')));
  CheckToken(flag + " '" + path + "'", text);
  return text;
}

TokenSource LoadToken(const std::string& flag, const std::string& path, const char* env) {
  if (!path.empty()) return {ReadTokenFile(flag, path), "file " + path};
  if (const char* v = std::getenv(env); v && *v) {
    std::string token = Trim(v);
    CheckToken(std::string("environment variable ") + env, token);
    return {token, std::string("env ") + env};
  }
  return {"", "none"};
}

}  // namespace dtrain
