# bench_model_step: images/s and per-layer time of one ResNet training step
# (CPU kernels). Included from bench/CMakeLists.txt.
add_executable(bench_model_step ${CMAKE_CURRENT_LIST_DIR}/model_step.cc)
target_link_libraries(bench_model_step PRIVATE dtrain_model)
