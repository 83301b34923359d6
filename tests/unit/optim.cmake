# unit tests for worker/optim and kernels/cpu/optimizer_update
dtrain_unit_test(optim_test
  SOURCES
    optim_schedule_test.cc
    optim_update_test.cc
  LIBS dtrain_optim)
