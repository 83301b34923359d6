# The dtrain-worker daemon: control-plane client (the only gRPC code in
# worker/), job runner, devices, config, main.
add_library(dtrain_worker_devices STATIC devices.cc)
target_link_libraries(dtrain_worker_devices PUBLIC dtrain_common)
if(DTRAIN_HAVE_CUDA)
  target_compile_definitions(dtrain_worker_devices PRIVATE DTRAIN_HAVE_CUDA=1)
  target_link_libraries(dtrain_worker_devices PRIVATE CUDA::cudart)
endif()

# Job log lines kept per job for `dtrain logs` (spdlog sink, memory + files).
add_library(dtrain_worker_log STATIC job_log.cc)
target_link_libraries(dtrain_worker_log PUBLIC dtrain_common spdlog::spdlog)

add_executable(dtrain-worker main.cc config.cc control_client.cc job_runner.cc log_requests.cc
  worker_metrics.cc)
target_link_libraries(dtrain-worker PRIVATE dtrain_worker_log dtrain_worker_devices dtrain_jobs dtrain_trainer dtrain_comm
  dtrain_metrics dtrain_proto dtrain_common gRPC::grpc++ CLI11::CLI11)
