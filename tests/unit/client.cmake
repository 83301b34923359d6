# unit tests for client/ (the dtrain CLI): formatting, progress line, exit
# codes, and rendering of jobs / workers / results (no coordinator needed).
dtrain_unit_test(client_format_test
  SOURCES client_format_test.cc
  LIBS dtrain_client_format)
dtrain_unit_test(client_render_test
  SOURCES client_render_test.cc
  LIBS dtrain_client_render)
# The dtrain binary end to end, against an in-process fake coordinator.
dtrain_unit_test(client_cli_test
  SOURCES client_cli_test.cc
  LIBS dtrain_proto)
add_dependencies(client_cli_test dtrain)
target_compile_definitions(client_cli_test PRIVATE DTRAIN_CLI_PATH="$<TARGET_FILE:dtrain>")
