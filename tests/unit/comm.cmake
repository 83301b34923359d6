# unit tests for comm
