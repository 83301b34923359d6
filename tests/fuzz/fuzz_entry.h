// The entry points the libFuzzer targets (tests/fuzz/fuzz_*.cc) and the unit
// test replaying tests/fuzz/regressions/ (tests/unit/fuzz_regressions_test.cc)
// share, so both exercise exactly the same code. Each returns how many parses
// accepted the input; a parse that rejects it with dtrain::Error is fine. An
// accepted input that breaks an invariant throws std::logic_error; anything
// else (another exception, a sanitizer report, a crash) is a bug too.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/crc32c.h"
#include "common/error.h"
#include "common/job_spec.h"
#include "worker/checkpoint/checkpoint_file.h"
#include "worker/checkpoint/safetensors.h"
#include "worker/data/idx_reader.h"
#include "worker/data/shard_format.h"

namespace dtrain::fuzz {

// The YAML text, then optionally NUL-separated "--set" overrides
// ("yaml\0a.b=1\0c=x"). An accepted spec must survive JobSpecToYaml ->
// ParseJobSpec unchanged (the coordinator sends it to every rank that way).
inline int JobSpecInput(std::span<const uint8_t> bytes) {
  const std::string input(bytes.begin(), bytes.end());
  std::vector<std::string> parts;
  for (size_t start = 0;;) {
    const size_t nul = input.find('\0', start);
    parts.push_back(input.substr(start, nul == std::string::npos ? std::string::npos : nul - start));
    if (nul == std::string::npos) break;
    start = nul + 1;
  }
  JobSpec spec;
  try {
    spec = ParseJobSpec(parts[0], std::vector<std::string>(parts.begin() + 1, parts.end()));
  } catch (const Error&) {
    return 0;
  }
  const std::string once = JobSpecToYaml(spec);
  std::string twice;
  try {
    twice = JobSpecToYaml(ParseJobSpec(once));
  } catch (const Error& e) {
    throw std::logic_error("an accepted job spec does not re-parse: " + std::string(e.what()) +
                           "\n--- resolved YAML ---\n" + once);
  }
  if (once != twice)
    throw std::logic_error("JobSpecToYaml round trip differs:\n--- first ---\n" + once + "--- second ---\n" + twice);
  return 1;
}

// ParseIdx at ranks 1 and 3 (labels, images); an accepted array holds
// rank positive dims and product(dims) bytes.
inline int IdxInput(std::span<const uint8_t> bytes) {
  int accepted = 0;
  for (int rank : {1, 3}) {
    data::IdxArray a;
    try {
      a = data::ParseIdx(bytes, "fuzz.idx", rank);
    } catch (const Error&) {
      continue;
    }
    ++accepted;
    uint64_t product = 1;
    bool ok = a.dims.size() == static_cast<size_t>(rank);
    for (int64_t d : a.dims) {
      ok = ok && d > 0 && product <= UINT64_MAX / static_cast<uint64_t>(d);
      if (ok) product *= static_cast<uint64_t>(d);
    }
    if (!ok || product != a.data.size())
      throw std::logic_error("accepted IDX array is inconsistent: rank " + std::to_string(rank) + ", " +
                             std::to_string(a.dims.size()) + " dims, product " + std::to_string(product) + ", " +
                             std::to_string(a.data.size()) + " bytes");
  }
  return accepted;
}

// ParseCheckpoint on the bytes as given, and again with the trailer replaced
// by the right checksum (so mutations get past the CRC to the field checks).
// Accepted data must serialize and re-parse to the same bytes.
inline int CheckpointInput(std::span<const uint8_t> bytes) {
  auto one = [](std::span<const uint8_t> b) {
    ckpt::CheckpointData d;
    try {
      d = ckpt::ParseCheckpoint(b, "fuzz.ckpt");
    } catch (const Error&) {
      return 0;
    }
    try {
      const std::vector<uint8_t> once = ckpt::SerializeCheckpoint(d);
      const std::vector<uint8_t> twice = ckpt::SerializeCheckpoint(ckpt::ParseCheckpoint(once, "reserialized.ckpt"));
      if (once != twice) throw std::logic_error("checkpoint re-serialization differs");
    } catch (const Error& e) {
      throw std::logic_error("an accepted checkpoint does not round-trip: " + std::string(e.what()));
    }
    return 1;
  };
  int accepted = one(bytes);
  if (bytes.size() >= 24) {
    std::vector<uint8_t> fixed(bytes.begin(), bytes.end());
    const uint32_t crc = Crc32c(std::span<const uint8_t>(fixed).first(fixed.size() - 8));
    for (size_t i = 0; i < 8; ++i) fixed[fixed.size() - 8 + i] = i < 4 ? static_cast<uint8_t>(crc >> (8 * i)) : 0;
    accepted += one(fixed);
  }
  return accepted;
}

// ParseSafetensors. An accepted file holds numel values per tensor (in i64 for
// I64, in f32 otherwise); relabelled F32 where it was F16, BF16 or F64 (the
// values are floats by then), it must serialize and re-parse to the same bytes.
inline int SafetensorsInput(std::span<const uint8_t> bytes) {
  ckpt::SafetensorsFile f;
  try {
    f = ckpt::ParseSafetensors(bytes, "fuzz.safetensors");
  } catch (const Error&) {
    return 0;
  }
  for (auto& [name, t] : f.tensors) {
    const bool i64 = t.dtype == "I64";
    if ((i64 ? t.i64.size() : t.f32.size()) != static_cast<uint64_t>(t.numel()) ||
        (i64 ? t.f32.size() : t.i64.size()) != 0)
      throw std::logic_error("accepted safetensors tensor '" + name + "' (" + t.dtype + ") holds " +
                             std::to_string(t.f32.size()) + " f32 and " + std::to_string(t.i64.size()) +
                             " i64 values for numel " + std::to_string(t.numel()));
    if (!i64) t.dtype = "F32";
  }
  try {
    const std::vector<uint8_t> once = ckpt::SerializeSafetensors(f);
    const std::vector<uint8_t> twice =
        ckpt::SerializeSafetensors(ckpt::ParseSafetensors(once, "reserialized.safetensors"));
    if (once != twice) throw std::logic_error("safetensors re-serialization differs");
  } catch (const Error& e) {
    throw std::logic_error("an accepted safetensors file does not round-trip: " + std::string(e.what()));
  }
  return 1;
}

// ParseShard (a whole .dtshard in memory) on the bytes as given, and again
// with header_crc and index_crc recomputed (so mutations reach the field
// checks). An accepted shard must re-encode to its own header and index bytes.
inline int ShardInput(std::span<const uint8_t> bytes) {
  auto one = [](std::span<const uint8_t> b) {
    data::ParsedShard s;
    try {
      s = data::ParseShard(b, "fuzz.dtshard");
    } catch (const Error&) {
      return 0;
    }
    const auto header = data::EncodeShardHeader(s.header);
    const std::vector<uint8_t> index = data::EncodeShardIndex(s.index.entries, s.index.class_names);
    const auto rest = b.subspan(s.header.index_offset);
    if (!std::equal(header.begin(), header.end(), b.begin()) ||
        !std::equal(index.begin(), index.end(), rest.begin(), rest.end()))
      throw std::logic_error("an accepted shard does not re-encode to its own header and index");
    return 1;
  };
  int accepted = one(bytes);
  if (bytes.size() >= data::kShardHeaderBytes) {
    std::vector<uint8_t> fixed(bytes.begin(), bytes.end());
    auto store = [&](size_t at, uint32_t v) {
      for (int i = 0; i < 4; ++i) fixed[at + i] = static_cast<uint8_t>(v >> (8 * i));
    };
    uint64_t index_offset = 0;
    for (int i = 7; i >= 0; --i) index_offset = index_offset << 8 | fixed[32 + i];
    if (index_offset <= fixed.size()) store(48, Crc32c(std::span<const uint8_t>(fixed).subspan(index_offset)));
    store(60, Crc32c(std::span<const uint8_t>(fixed).first(60)));
    accepted += one(fixed);
  }
  return accepted;
}

}  // namespace dtrain::fuzz
