# unit tests for data
