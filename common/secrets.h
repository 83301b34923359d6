// Reading the control plane's secrets: bearer tokens and PEM files (TLS
// certificates, keys, CA bundles). Every failure throws
// Error(kInvalidArgument) naming the flag and the file, never the contents.
// A token's value is never logged: Describe() strings say only where it came
// from (TokenSource::where).
#pragma once

#include <string>

namespace dtrain {

// Reads a PEM file for `flag` (e.g. "--tls-cert"); throws when the file is
// missing, unreadable, empty or holds no "-----BEGIN" block.
std::string ReadPemFile(const std::string& flag, const std::string& path);

// Reads a token file: the first line, without surrounding whitespace. Throws
// when it is missing, unreadable, empty, or holds characters that cannot go
// in an HTTP header (control characters, spaces inside the token).
std::string ReadTokenFile(const std::string& flag, const std::string& path);

struct TokenSource {
  std::string token;  // empty: none configured
  std::string where;  // "file PATH", "env NAME" or "none" (safe to log)
};

// The token from `path` when it is non-empty (files are preferred: a token in
// argv shows in ps), else from environment variable `env` when set and
// non-empty, else none. Validates like ReadTokenFile.
TokenSource LoadToken(const std::string& flag, const std::string& path, const char* env);

}  // namespace dtrain
