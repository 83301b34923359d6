// libFuzzer target for dtrain::fuzz::IdxInput (tests/fuzz/fuzz_entry.h says what it
// checks). Built by tests/fuzz/CMakeLists.txt, run by tests/fuzz/run.sh.
#include "tests/fuzz/fuzz_entry.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  dtrain::fuzz::IdxInput({data, size});
  return 0;
}
