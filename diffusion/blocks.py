"""Row blocks over an (N, V) tensor: bounded working memory for vocabulary-wide sums."""

from __future__ import annotations

import torch

BLOCK_ELEMENTS = {"cpu": 2**21, "cuda": 2**26}


def row_blocks(rows: int, vocab: int, device: torch.device) -> list[slice]:
    """Slices of at most BLOCK_ELEMENTS / V rows covering ``rows`` rows (cache-sized on CPU,
    few kernel launches on GPU)."""
    step = max(1, BLOCK_ELEMENTS.get(device.type, BLOCK_ELEMENTS["cuda"]) // vocab)
    return [slice(i, min(i + step, rows)) for i in range(0, rows, step)]
