"""Sentence identity and per-sentence records of a likelihood bound.

A sentence's id is ``"<index>:<hash>"``: its index among the bounded split's rows (after
empty rows are dropped) and the first 12 hex digits of the SHA-256 of its token ids (little-
endian int32). Two results can be paired sentence by sentence through it, and the noise of a
sentence is keyed by it (``noise_keys``), so the same sentence gets the same draws whatever
the batch, the order or the checkpoint.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import torch


def sentence_ids(ids: Sequence[Sequence[int]]) -> list[str]:
    """``"<index>:<hash of the token ids>"`` for every sequence, in order."""
    return [
        f"{index}:{hashlib.sha256(np.asarray(row, dtype='<i4').tobytes()).hexdigest()[:12]}"
        for index, row in enumerate(ids)
    ]


def noise_keys(seed: int, ids: Sequence[str]) -> list[int]:
    """One generator seed per sentence, in [0, 2**60): a hash of the seed and the id."""
    return [int(hashlib.sha256(f"{seed}:{sid}".encode()).hexdigest()[:15], 16) for sid in ids]


def per_sentence(
    ids: Sequence[str], tokens: torch.Tensor, words: torch.Tensor, values: torch.Tensor
) -> dict:
    """Columns, one entry per sentence: id, tokens, words, ``nats`` (the bound, mean over
    draws) and, for K > 1 draws, ``nats_var`` (the variance over the draws, K − 1 in the
    denominator). Args: tokens, words (N,); values (N, K) nats."""
    values = values.to(torch.float64)
    out = {
        "id": list(ids),
        "tokens": tokens.tolist(),
        "words": words.tolist(),
        "nats": values.mean(-1).tolist(),
    }
    if values.shape[1] > 1:
        out["nats_var"] = values.var(-1).tolist()
    return out


def longest_first(ids: Sequence[Sequence[int]]) -> list[int]:
    """Indices of ``ids`` longest first (ties in input order): batches of nearly one length,
    so little padding is computed."""
    return sorted(range(len(ids)), key=lambda i: -len(ids[i]))


def in_input_order(order: Sequence[int], *columns: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``columns`` computed in ``order`` (rows first dimension), put back in input order."""
    back = torch.empty(len(order), dtype=torch.long)
    back[torch.tensor(list(order), dtype=torch.long)] = torch.arange(len(order))
    return tuple(column[back] for column in columns)
