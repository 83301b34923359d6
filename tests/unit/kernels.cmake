# unit tests for kernels (CPU reference kernels; gradient checks in double)
dtrain_unit_test(kernels_layers_test SOURCES kernels_layers_test.cc LIBS dtrain_kernels_cpu)
dtrain_unit_test(kernels_loss_scale_test SOURCES kernels_loss_scale_test.cc LIBS dtrain_kernels_cpu)
dtrain_unit_test(kernels_input_norm_test SOURCES kernels_input_norm_test.cc LIBS dtrain_kernels_cpu)
