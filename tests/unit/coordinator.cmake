# unit tests for coordinator/ (the gRPC-free core)
dtrain_unit_test(coordinator_core_test SOURCES coordinator_core_test.cc LIBS dtrain_coordinator_core)
