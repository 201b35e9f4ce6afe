"""Unconditional corpora: the embedded toy grammar, local text files, saved and hub datasets."""

from corpora import toy
from corpora.loading import load_texts
from corpora.tokenize import tokenize_texts

__all__ = ["load_texts", "tokenize_texts", "toy"]
