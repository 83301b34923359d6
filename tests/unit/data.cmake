# unit tests for worker/data
dtrain_unit_test(data_test
  SOURCES
    data_augment_test.cc
    data_idx_test.cc
    data_loader_test.cc
    data_sampler_test.cc
    data_synthetic_test.cc
  LIBS dtrain_data ZLIB::ZLIB)
