# unit tests for optim
