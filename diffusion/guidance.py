"""Unsupervised classifier-free guidance for conditional generation (SMDM, Nie et al. 2024)."""

from __future__ import annotations

import torch

from diffusion.errors import ParameterError
from diffusion.types import Denoiser


class GuidedDenoiser:
    """log p_w(x0 | x_t) = (1 + w) · log p_θ(x0 | x_t, source) − w · log p_θ(x0 | x_t, [M]
    source), renormalised. The conditional and the unconditional input run as one network
    call of twice the batch; with w = 0 it is the plain denoiser (one call of the batch).

    Args:
        denoiser: the conditional model (a ``diffusion.Denoiser``).
        source_mask: (B, L) bool, the source positions that the unconditional input masks.
        mask_id: the [M] id.
        weight: w ≥ 0.
    """

    def __init__(self, denoiser: Denoiser, source_mask: torch.Tensor, mask_id: int, weight: float):
        if weight < 0:
            raise ParameterError("weight", f"weight (guidance) must be ≥ 0, got {weight}")
        self.denoiser, self.source_mask = denoiser, source_mask
        self.mask_id, self.weight = mask_id, weight

    def select_rows(self, rows: torch.Tensor) -> GuidedDenoiser:
        """The guided denoiser of a sub-batch: these rows (indices into the batch) with their
        own source masks (what ``diffusion.samplers.RowCache`` forwards)."""
        return GuidedDenoiser(self.denoiser, self.source_mask[rows], self.mask_id, self.weight)

    def __call__(self, xt: torch.Tensor, u: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        """(N, V) guided log-probabilities at the ``masked`` positions of xt (B, L)."""
        if self.weight == 0:
            return self.denoiser(xt, u, masked)
        unconditional = xt.masked_fill(self.source_mask, self.mask_id)
        both = self.denoiser(
            torch.cat([xt, unconditional]), torch.cat([u, u]), torch.cat([masked, masked])
        )
        cond, uncond = both.chunk(2)
        guided = (1.0 + self.weight) * cond - self.weight * uncond
        guided = guided.masked_fill(~(cond.isfinite() & uncond.isfinite()), float("-inf"))
        return guided.log_softmax(-1)
