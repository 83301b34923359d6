# train_bench: training images/s with 1 and N worker processes, step split.
add_executable(train_bench train_bench.cc)
target_link_libraries(train_bench PRIVATE dtrain_trainer dtrain_comm dtrain_common)
