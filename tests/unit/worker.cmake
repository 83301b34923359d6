# Unit tests for the worker daemon's own parts (worker/*.cc outside the libraries).
dtrain_unit_test(worker_job_log_test SOURCES worker_job_log_test.cc LIBS dtrain_worker_log)
