# worker daemon
