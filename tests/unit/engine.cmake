# unit tests for worker/engine: the architecture table, layouts and device
# buffer plan, bucket plan and overlap order, the CPU engine behind the seam
dtrain_unit_test(engine_arch_test SOURCES engine_arch_test.cc LIBS dtrain_engine)
dtrain_unit_test(engine_overlap_test SOURCES engine_overlap_test.cc LIBS dtrain_engine)
dtrain_unit_test(engine_cpu_test SOURCES engine_cpu_test.cc LIBS dtrain_engine dtrain_trainer)
