#include "client/format.h"

#include <cmath>
#include <cstdio>
#include <ctime>

namespace dtrain::cli {

namespace {

std::string Printf(const char* fmt, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), fmt, v);
  return buf;
}

}  // namespace

std::string FormatDuration(double s) {
  if (!std::isfinite(s) || s < 0) return "-";
  if (s < 10) return Printf("%.1fs", s);
  const auto total = static_cast<int64_t>(std::llround(s));
  const int64_t d = total / 86400, h = total / 3600 % 24, m = total / 60 % 60, sec = total % 60;
  char buf[64];
  if (total < 60) {
    std::snprintf(buf, sizeof(buf), "%llds", static_cast<long long>(sec));
  } else if (total < 3600) {
    std::snprintf(buf, sizeof(buf), "%lldm%02llds", static_cast<long long>(m),
                  static_cast<long long>(sec));
  } else if (total < 86400) {
    std::snprintf(buf, sizeof(buf), "%lldh%02lldm", static_cast<long long>(total / 3600),
                  static_cast<long long>(m));
  } else {
    std::snprintf(buf, sizeof(buf), "%lldd%02lldh", static_cast<long long>(d),
                  static_cast<long long>(h));
  }
  return buf;
}

std::string FormatBytes(int64_t bytes) {
  if (bytes < 0) return "-";
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  if (bytes < 1024) return std::to_string(bytes) + " B";
  double v = static_cast<double>(bytes);
  int unit = 0;
  while (v >= 1024 && unit < 5) {
    v /= 1024;
    ++unit;
  }
  // Whole numbers print without decimals: "256 MiB", not "256.0 MiB".
  std::string num = (v == std::floor(v)) ? Printf("%.0f", v)
                                         : Printf(v < 10 ? "%.2f" : v < 100 ? "%.1f" : "%.0f", v);
  return num + " " + kUnits[unit];
}

std::string FormatRate(double r) {
  if (!std::isfinite(r) || r < 0) return "-";
  if (r < 1000) return Printf("%.1f", r);
  if (r < 1e6) return Printf(r < 1e4 ? "%.2fk" : r < 1e5 ? "%.1fk" : "%.0fk", r / 1e3);
  if (r < 1e9) return Printf(r < 1e7 ? "%.2fM" : r < 1e8 ? "%.1fM" : "%.0fM", r / 1e6);
  return Printf("%.2fG", r / 1e9);
}

std::string FormatPercent(double f) {
  if (std::isnan(f) || f < 0) return "-";
  return Printf("%.2f%%", f * 100);
}

std::string FormatFixed(double value, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, value);
  return buf;
}

std::string FormatTimestamp(double t) {
  if (!std::isfinite(t) || t <= 0) return "-";
  const auto secs = static_cast<std::time_t>(t);
  std::tm tm{};
  localtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

Table::Table(std::vector<std::string> headers, std::vector<bool> right_aligned)
    : headers_(std::move(headers)), right_(std::move(right_aligned)) {
  right_.resize(headers_.size(), false);
}

void Table::AddRow(std::vector<std::string> cells) {
  cells.resize(headers_.size());
  rows_.push_back(std::move(cells));
}

std::string Table::Render(const std::string& indent) const {
  std::vector<size_t> width(headers_.size());
  for (size_t c = 0; c < headers_.size(); ++c) width[c] = headers_[c].size();
  for (const auto& row : rows_) {
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  }
  std::string out;
  const auto emit = [&](const std::vector<std::string>& cells) {
    std::string line = indent;
    for (size_t c = 0; c < cells.size(); ++c) {
      const std::string pad(width[c] - cells[c].size(), ' ');
      if (c > 0) line += "  ";
      line += right_[c] ? pad + cells[c] : cells[c] + pad;
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  };
  emit(headers_);
  for (const auto& row : rows_) emit(row);
  return out;
}

}  // namespace dtrain::cli
