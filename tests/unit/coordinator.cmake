# unit tests for coordinator
