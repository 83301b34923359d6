# unit tests for common/
dtrain_unit_test(common_job_spec_test SOURCES common_job_spec_test.cc LIBS dtrain_common)
target_compile_definitions(common_job_spec_test PRIVATE DTRAIN_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
