"""Generation drivers: unconditional samples, seq2seq candidates (for MBR), their settings."""
