"""The per-row cache of p_θ(x0 | x_s) behind the ``rowcache`` sampler."""

from __future__ import annotations

from typing import Any

import torch

from diffusion.process import AbsorbingDiffusion
from diffusion.types import Denoiser


class RowCache:
    """p_θ(x0 | x_s) of every target position, as of its row's last forward.

    For a time-agnostic network whose output for a row depends on that row's ids only, a row
    whose state did not change since its last forward needs no new one. ``update`` forwards
    the rows that changed (and still have masked positions) as one sub-batch of the same width
    L, with their own masked positions, and writes what a step needs into per-position slots:
    the float64 CDF of the filtered p_θ (exactly the ``categorical`` draw's), its expected
    information Σ_v p(v) h(v) in the filtered probabilities' dtype (the spindle's sequence
    mean) and the argmax (the history). Per step the sampler then does O(N log V) work, not
    O(N V): the cost of sampling follows the tokens, not the steps.

    A denoiser with per-row state (``GuidedDenoiser``'s source mask) gives the sub-batch's
    denoiser through ``select_rows(rows)``; any other is called on the sub-batch as it is.

    Args:
        sampler: the filters (``Sampler.filtered_probs``).
        diffusion: its ``h`` is used with the spindle on.
        target_mask: (B, L) bool, the positions that can be masked; one slot each.
        keep_argmax: also keep the argmax (for ``record_history``).
    Attributes: ``calls`` (network calls), ``row_forwards`` (rows forwarded, summed over
    calls; a guided row counts once, although its call runs it twice).
    """

    def __init__(
        self,
        sampler: Any,
        diffusion: AbsorbingDiffusion,
        target_mask: torch.Tensor,
        keep_argmax: bool = False,
    ):
        self.sampler, self.diffusion, self.keep_argmax = sampler, diffusion, keep_argmax
        self.size = int(target_mask.sum())
        self.slots = torch.full(target_mask.shape, -1, dtype=torch.long, device=target_mask.device)
        self.slots[target_mask] = torch.arange(self.size, device=target_mask.device)
        self.forwarded: torch.Tensor = torch.zeros_like(target_mask)  # masked at last forward
        self.cdf: torch.Tensor | None = None  # (slots, V) float64
        self.expected: torch.Tensor | None = None  # (slots,), spindle only
        self.argmax: torch.Tensor | None = None  # (slots,), keep_argmax only
        self.calls = self.row_forwards = 0

    def update(
        self, denoiser: Denoiser, xt: torch.Tensor, u: torch.Tensor, masked: torch.Tensor
    ) -> None:
        """Forward the rows of xt (B, L) whose ``masked`` (B, L) differs from their last
        forward's and that have a masked position; u (B,) their times."""
        changed = (masked != self.forwarded).any(-1) & masked.any(-1)
        rows = changed.nonzero().squeeze(-1)
        if rows.numel() == 0:
            return
        select = getattr(denoiser, "select_rows", None)
        network = select(rows) if select is not None else denoiser
        sub_masked = masked[rows]
        log_probs = network(xt[rows], u[rows], sub_masked)
        self.calls += 1
        self.row_forwards += rows.numel()
        probs = self.sampler.filtered_probs(log_probs)
        cdf = torch.cumsum(probs, -1, dtype=torch.float64)  # exactly as ``categorical``
        slots = self.slots[rows][sub_masked]
        if self.cdf is None:
            self.cdf = cdf.new_zeros(self.size, cdf.shape[-1])
        self.cdf[slots] = cdf
        expected = self.diffusion.expected_information(probs)
        if expected is not None:
            if self.expected is None:
                self.expected = expected.new_zeros(self.size)
            self.expected[slots] = expected
        if self.keep_argmax:
            if self.argmax is None:
                self.argmax = slots.new_zeros(self.size)
            self.argmax[slots] = log_probs.argmax(-1)
        self.forwarded = torch.where(changed.unsqueeze(-1), masked, self.forwarded)

    def categorical(self, masked: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """``categorical`` of the filtered p_θ at the ``masked`` (B, L) positions, from the
        cached CDFs: the same uniforms (N, 1), the same ids (N,)."""
        slots = self.slots[masked]
        cdf = self.cdf
        u = torch.rand(slots.shape[0], 1, generator=generator, device=cdf.device,
                       dtype=torch.float64)  # fmt: skip
        values = cdf.new_zeros(cdf.shape[0], 1)
        values[slots] = u * cdf[slots, -1:]
        index = torch.searchsorted(cdf, values, right=True)[slots]
        return index.squeeze(-1).clamp_max(cdf.shape[-1] - 1)

    def expected_at(self, masked: torch.Tensor) -> torch.Tensor | None:
        """The cached expected information at the ``masked`` (B, L) positions, (N,): what
        ``AbsorbingDiffusion.expected_information`` gives for their filtered p_θ (None
        without the spindle)."""
        return None if self.expected is None else self.expected[self.slots[masked]]

    def prediction(self, masked: torch.Tensor) -> torch.Tensor:
        """The cached argmax at the ``masked`` positions, (N,)."""
        return self.argmax[self.slots[masked]]
