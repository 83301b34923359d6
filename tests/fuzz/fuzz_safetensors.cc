// libFuzzer target for dtrain::fuzz::SafetensorsInput (tests/fuzz/fuzz_entry.h says what it
// checks). Built by tests/fuzz/CMakeLists.txt, run by tests/fuzz/run.sh.
#include "tests/fuzz/fuzz_entry.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  dtrain::fuzz::SafetensorsInput({data, size});
  return 0;
}
