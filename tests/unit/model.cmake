# unit tests for model
dtrain_unit_test(model_resnet_test SOURCES model_resnet_test.cc LIBS dtrain_model)
dtrain_unit_test(model_gradcheck_test SOURCES model_gradcheck_test.cc LIBS dtrain_model)
dtrain_unit_test(model_dnnl_test SOURCES model_dnnl_test.cc LIBS dtrain_model)
