"""Token information for the spindle schedule (paper, Sec. 4.1; reference-code form)."""

from __future__ import annotations

import torch


def token_information(counts: torch.Tensor, pad_id: int | None = None) -> torch.Tensor:
    """h(v) = log(1 + count(v)) / max_u log(1 + count(u)); h([PAD]) = 0.

    Args:
        counts: token counts of the training split, shape (V,).
        pad_id: padding id, whose information is set to 0.
    Returns:
        float32 tensor of shape (V,) with values in [0, 1].
    """
    h = torch.log1p(counts.to(torch.float64).clamp_min(0))
    top = h.max()
    h = h / top if top > 0 else h
    if pad_id is not None:
        h[pad_id] = 0.0
    return h.to(torch.float32)


def centred_information(
    h: torch.Tensor, x0: torch.Tensor, target_mask: torch.Tensor
) -> torch.Tensor:
    """w_i = h(x0_i) − mean over the sequence's target positions of h(x0_j).

    Args:
        h: token information, shape (V,).
        x0: clean ids, shape (B, L).
        target_mask: bool, shape (B, L).
    Returns:
        float32 tensor (B, L); zero outside the target positions.
    """
    hx = h[x0] * target_mask
    mean = hx.sum(-1, keepdim=True) / target_mask.sum(-1, keepdim=True).clamp_min(1)
    return (hx - mean) * target_mask
