# Unit tests for worker/checkpoint (the checkpoint file format) and the fuzz
# regression inputs (tests/fuzz/regressions/<target>/, fed to the same entry
# points as the libFuzzer targets in tests/fuzz). ctest names are prefixed
# (checkpoint., fuzz.) so `ctest -R "checkpoint|fuzz"` selects them.
function(dtrain_prefixed_unit_test name prefix)
  cmake_parse_arguments(T "" "" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} GTest::gtest GTest::gtest_main)
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 TEST_PREFIX ${prefix} PROPERTIES LABELS unit)
endfunction()

dtrain_prefixed_unit_test(checkpoint_file_test checkpoint.
  SOURCES checkpoint_file_test.cc
  LIBS dtrain_checkpoint)

dtrain_prefixed_unit_test(checkpoint_safetensors_test checkpoint.
  SOURCES checkpoint_safetensors_test.cc
  LIBS dtrain_checkpoint)
target_compile_definitions(checkpoint_safetensors_test PRIVATE DTRAIN_PYDEPS_DIR="${CMAKE_SOURCE_DIR}/.pydeps")

dtrain_prefixed_unit_test(fuzz_regressions_test fuzz.
  SOURCES fuzz_regressions_test.cc
  LIBS dtrain_checkpoint dtrain_data dtrain_common)
target_compile_definitions(fuzz_regressions_test PRIVATE
  DTRAIN_FUZZ_REGRESSIONS_DIR="${CMAKE_SOURCE_DIR}/tests/fuzz/regressions")

dtrain_prefixed_unit_test(checkpoint_weights_test checkpoint.
  SOURCES checkpoint_weights_test.cc
  LIBS dtrain_weights)

dtrain_prefixed_unit_test(checkpoint_safetensors_malformed_test checkpoint.
  SOURCES checkpoint_safetensors_malformed_test.cc
  LIBS dtrain_checkpoint)
