# unit tests for kernels (CPU reference kernels; gradient checks in double)
dtrain_unit_test(kernels_layers_test SOURCES kernels_layers_test.cc LIBS dtrain_kernels_cpu)
