# unit tests for worker/trainer's MLPerf-format logging (real short runs, local communicator)
dtrain_unit_test(trainer_mlperf_test SOURCES trainer_mlperf_test.cc
  LIBS dtrain_trainer dtrain_comm nlohmann_json::nlohmann_json)
