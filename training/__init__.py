"""Training: the trainer and its loop, batch plan, optimizer, RNG state, loggers, training data."""
