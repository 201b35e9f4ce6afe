"""The autoregressive twin study: DiffusionBERT against an AR model of the same size, data and
budget (experiments/ar_twin/run.py)."""
