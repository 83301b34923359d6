# oneDNN kernels vs the CPU reference (fp32 parity); built when kernels/dnnl is.
if(TARGET dtrain_kernels_dnnl)
  dtrain_unit_test(kernels_dnnl_conv_test SOURCES kernels_dnnl_conv_test.cc
                   LIBS dtrain_kernels_dnnl dtrain_model)
  dtrain_unit_test(kernels_dnnl_ops_test SOURCES kernels_dnnl_ops_test.cc
                   LIBS dtrain_kernels_dnnl)
endif()
