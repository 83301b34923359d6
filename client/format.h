// Plain-text formatting for the dtrain CLI: durations, byte sizes, rates,
// percentages and aligned tables. Pure functions of their arguments (no I/O,
// no clock, no gRPC), so they are unit-tested directly.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dtrain::cli {

// "0.4s", "59s", "3m05s", "2h07m", "3d04h". Negative or non-finite: "-".
std::string FormatDuration(double seconds);

// Binary units, as allocators and nccl-tests' users read them:
// 512 -> "512 B", 1536 -> "1.5 KiB", 268435456 -> "256 MiB".
std::string FormatBytes(int64_t bytes);

// Throughput with a metric suffix: 950.3 -> "950.3", 12345 -> "12.3k",
// 1730000 -> "1.73M". Non-finite or negative: "-".
std::string FormatRate(double per_second);

// A fraction in [0, 1] as a percentage with two decimals: 0.9123 -> "91.23%".
// Negative (the proto's "not evaluated yet"): "-".
std::string FormatPercent(double fraction);

// printf-style "%.*f"; non-finite values print as "nan"/"inf".
std::string FormatFixed(double value, int decimals);

// Unix seconds as local "YYYY-MM-DD HH:MM:SS"; 0 or negative: "-".
std::string FormatTimestamp(double unix_seconds);

// A table in the style of kubectl / squeue: a header row, columns separated
// by two spaces, each column as wide as its widest cell. Columns marked
// right-aligned (numbers) are padded on the left. No trailing spaces.
class Table {
 public:
  explicit Table(std::vector<std::string> headers, std::vector<bool> right_aligned = {});
  void AddRow(std::vector<std::string> cells);  // missing cells print empty
  size_t rows() const { return rows_.size(); }
  std::string Render(const std::string& indent = "") const;

 private:
  std::vector<std::string> headers_;
  std::vector<bool> right_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace dtrain::cli
