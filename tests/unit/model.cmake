# unit tests for model
