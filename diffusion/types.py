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
