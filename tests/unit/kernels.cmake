# unit tests for kernels
