"""Evaluation: likelihood bounds in the units papers report, text metrics, generative perplexity."""
