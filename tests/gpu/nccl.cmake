# NCCL communicator tests (ctest label gpu): built when the NCCL backend is
# (worker/comm sets DTRAIN_HAVE_NCCL). Include it from tests/gpu/CMakeLists.txt:
#   include(${CMAKE_CURRENT_SOURCE_DIR}/nccl.cmake)
# Without a GPU the CUDA tests skip with the reason; the argument checks run.
if(DTRAIN_HAVE_NCCL AND NOT TARGET nccl_communicator_test)
  if(COMMAND dtrain_gpu_test)
    dtrain_gpu_test(nccl_communicator_test
      SOURCES ${CMAKE_CURRENT_LIST_DIR}/nccl_communicator_test.cc
      LIBS dtrain_comm dtrain_common)
  else()
    include(GoogleTest)
    add_executable(nccl_communicator_test ${CMAKE_CURRENT_LIST_DIR}/nccl_communicator_test.cc)
    target_link_libraries(nccl_communicator_test PRIVATE dtrain_comm dtrain_common CUDA::cudart
      GTest::gtest GTest::gtest_main)
    set_target_properties(nccl_communicator_test PROPERTIES
      RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
    gtest_discover_tests(nccl_communicator_test DISCOVERY_TIMEOUT 60
      PROPERTIES LABELS gpu TIMEOUT 600)
  endif()
endif()
