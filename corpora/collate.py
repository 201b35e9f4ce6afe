"""Token-id rows to padded tensors: x0 and the mask of the positions to generate."""

from __future__ import annotations

import torch


def collate(
    sequences: list[list[int]], pad_id: int, source_lengths: list[int] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id lists. Returns x0 (B, L) and target_mask (B, L) bool: the real tokens,
    minus each row's first ``source_lengths[b]`` (the fixed source of a seq2seq pair)."""
    length = max(len(s) for s in sequences)
    x0 = torch.full((len(sequences), length), pad_id, dtype=torch.long)
    for row, ids in enumerate(sequences):
        x0[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    positions = torch.arange(length)
    target_mask = positions < torch.tensor([len(s) for s in sequences]).unsqueeze(-1)
    if source_lengths is not None:
        target_mask &= positions >= torch.tensor(source_lengths).unsqueeze(-1)
    return x0, target_mask


def collate_rows(rows: dict, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``collate`` of a dataset slice (``input_ids`` and, for seq2seq, ``source_length``)."""
    return collate(rows["input_ids"], pad_id, rows.get("source_length"))
