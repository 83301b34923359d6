# unit tests for worker/data (the tests encode their own JPEG/PNG images)
find_package(JPEG REQUIRED)
find_package(PNG REQUIRED)
dtrain_unit_test(data_test
  SOURCES
    data_augment_test.cc
    data_crop_box_test.cc
    data_idx_test.cc
    data_image_decode_test.cc
    data_image_resample_test.cc
    data_loader_test.cc
    data_pipeline_test.cc
    data_records_test.cc
    data_sampler_test.cc
    data_synthetic_test.cc
  LIBS dtrain_data ZLIB::ZLIB JPEG::JPEG PNG::PNG)
