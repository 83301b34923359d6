# Unit tests for worker/comm and the allreduce-bench job body. The UCX tests
# fork real rank processes (tests/unit/comm_procs.h) on loopback devices.
set(_comm_libs dtrain_comm dtrain_common)
dtrain_unit_test(comm_allreduce_test SOURCES comm_allreduce_test.cc LIBS ${_comm_libs})
dtrain_unit_test(comm_collectives_test SOURCES comm_collectives_test.cc LIBS ${_comm_libs})
dtrain_unit_test(comm_failure_test SOURCES comm_failure_test.cc LIBS ${_comm_libs})
dtrain_unit_test(comm_bench_test SOURCES comm_bench_test.cc LIBS dtrain_jobs ${_comm_libs})
dtrain_unit_test(comm_dead_peer_test SOURCES comm_dead_peer_test.cc LIBS ${_comm_libs})
dtrain_unit_test(comm_hierarchical_test SOURCES comm_hierarchical_test.cc LIBS ${_comm_libs})
