"""The one interface between the diffusion math and a network."""

from __future__ import annotations

from typing import Protocol

import torch


class Denoiser(Protocol):
    def __call__(self, xt: torch.Tensor, u: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        """log p_θ(x0 | x_t) at the masked positions.

        Args:
            xt: (B, L) ids; u: (B,) times in [0, 1]; masked: (B, L) bool.
        Returns:
            (N, V) log-probabilities, N = masked.sum(), rows in row-major order of ``masked``.
        """
        ...


def target_log_probs(
    denoiser: Denoiser,
    xt: torch.Tensor,
    u: torch.Tensor,
    masked: torch.Tensor,
    target: torch.Tensor,
) -> torch.Tensor:
    """log p_θ(target | x_t) at the masked positions, (N,), for target ids (N,).

    A denoiser whose network (``.module`` under DistributedDataParallel) sets
    ``accepts_target`` computes it itself when called with ``target=`` (``DiffusionBert``: in
    row blocks, keeping no (N, V) tensor for backward); any other is gathered from its (N, V)
    output.
    """
    if getattr(getattr(denoiser, "module", denoiser), "accepts_target", False):
        return denoiser(xt, u, masked, target=target)
    return denoiser(xt, u, masked).gather(-1, target.unsqueeze(-1)).squeeze(-1)
