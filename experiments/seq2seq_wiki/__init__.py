"""The paper's conditional claim on real English (experiments/seq2seq_wiki/run.py)."""
