// libFuzzer target for dtrain::fuzz::ShardInput (tests/fuzz/fuzz_entry.h says what it
// checks). Built by tests/fuzz/CMakeLists.txt, run by tests/fuzz/run.sh.
#include "tests/fuzz/fuzz_entry.h"

// shard_format.cc also holds CheckPackableImage, which calls the image decoder;
// ParseShard never does, so this target links a stand-in instead of libjpeg/libpng.
dtrain::data::ImageInfo dtrain::data::ReadImageInfo(const uint8_t*, size_t) {
  dtrain::Fail(dtrain::ErrorCode::kInternal, "ReadImageInfo is not linked into fuzz_shard_index");
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  dtrain::fuzz::ShardInput({data, size});
  return 0;
}
