# unit tests for coordinator/ (the gRPC-free core)
dtrain_unit_test(coordinator_core_test SOURCES coordinator_core_test.cc LIBS dtrain_coordinator_core)
# bearer-token checks (coordinator/auth.h) and token/PEM file reading (common/secrets.h)
dtrain_unit_test(coordinator_auth_test SOURCES coordinator_auth_test.cc LIBS dtrain_coordinator_auth)
# durability (real SQLite store) and restarts of the core
dtrain_unit_test(coordinator_recovery_test SOURCES coordinator_recovery_test.cc LIBS dtrain_coordinator_core)
# ListWorkers' serialized answer and its cache; heartbeats, readers and writers at once
dtrain_unit_test(coordinator_worker_list_test SOURCES coordinator_worker_list_test.cc LIBS dtrain_coordinator_core)
