# unit tests for common/ (owned by the integrator)
