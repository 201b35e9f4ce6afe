"""How the continuous bound's times and masks are drawn: masks conditioned on masking at
least one target token, time proposals for importance sampling, stratified uniforms and the
quadrature of the Rao–Blackwellised time integrals. The estimators that use them are in
``diffusion.estimators``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from diffusion.errors import ParameterError


def conditioned_mask(
    keep: torch.Tensor, target_mask: torch.Tensor, pick: torch.Tensor, draw: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask each target token with probability 1 − keep, conditioned on masking at least one.

    The first masked position j is drawn by the inverse CDF (``pick``) of
    P(j) ∝ Π_{i<j} keep_i · (1 − keep_j); the positions after j are masked independently by
    ``draw`` < 1 − keep, those before j are kept.
    Args: keep (B, L) float64 probabilities; target_mask (B, L) bool; pick (B,) and
    draw (B, L) uniforms. Returns masked (B, L) bool and p_any (B,) float64, the probability of
    masking at least one target token (0 for a sequence without targets, which masks nothing).
    """
    keep = torch.where(target_mask, keep.expand_as(draw), 1.0)
    kept_through = keep.cumprod(-1)
    p_any = 1.0 - kept_through[:, -1]
    cdf = 1.0 - kept_through
    first = (cdf <= (pick * p_any).unsqueeze(-1)).sum(-1, keepdim=True)
    positions = torch.arange(keep.shape[1], device=keep.device).unsqueeze(0)
    later = (positions > first) & (draw >= keep)
    masked = ((positions == first) | later) & target_mask
    return masked, p_any


@dataclass(frozen=True)
class TimeProposal:
    """A piecewise-constant density on v ∈ [0, 1]: ``density[j]`` on [edges[j], edges[j+1]).

    Stored with a result (``as_dict``/``from_dict``) so that the estimate can be reproduced
    and another checkpoint bounded with the same times.
    """

    edges: tuple[float, ...]
    density: tuple[float, ...]

    def __post_init__(self) -> None:
        widths = [b - a for a, b in zip(self.edges, self.edges[1:], strict=False)]
        if (
            not all(math.isfinite(x) for x in (*self.edges, *self.density))
            or len(self.density) != len(widths)
            or self.edges[0] != 0.0
            or self.edges[-1] != 1.0
            or min(widths) <= 0
            or min(self.density) <= 0
            or abs(sum(d * w for d, w in zip(self.density, widths, strict=True)) - 1.0) > 1e-9
        ):
            raise ParameterError(
                "proposal",
                "proposal: edges must rise from 0 to 1 and the density be finite, positive and "
                "integrate to 1",
            )

    @classmethod
    def uniform(cls) -> TimeProposal:
        return cls((0.0, 1.0), (1.0,))

    @classmethod
    def fit(
        cls,
        v: torch.Tensor,
        values: torch.Tensor,
        edges: Sequence[float],
        floor: float = 0.2,
    ) -> TimeProposal:
        """The density ∝ √E[f² | bin] (the variance-minimising shape within the family),
        mixed with ``floor`` of the uniform so that no weight exceeds 1 / floor.

        Args: v (N,) pilot times in [0, 1] drawn uniformly; values (N,) the integrand there.
        """
        edges_t = torch.tensor(edges, dtype=torch.float64)
        index = torch.bucketize(v.double().cpu(), edges_t[1:-1], right=True)
        bins = len(edges) - 1
        second = torch.zeros(bins, dtype=torch.float64).index_add_(0, index, values.double() ** 2)
        count = torch.zeros(bins, dtype=torch.float64).index_add_(0, index, torch.ones_like(v))
        shape = (second / count.clamp_min(1)).sqrt()
        widths = edges_t.diff()
        if (shape * widths).sum() <= 0:
            return cls.uniform()
        shape = shape / (shape * widths).sum()
        density = (1.0 - floor) * shape + floor
        density = density / (density * widths).sum()
        return cls(tuple(float(e) for e in edges), tuple(density.tolist()))

    def sample(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inverse CDF: uniforms y (B,) → times v (B,) and their weights 1 / density(v) (B,)."""
        edges = torch.tensor(self.edges, dtype=torch.float64, device=y.device)
        density = torch.tensor(self.density, dtype=torch.float64, device=y.device)
        mass = density * edges.diff()
        cdf = torch.cat([mass.new_zeros(1), mass.cumsum(0)])
        cdf[-1] = 1.0
        j = torch.bucketize(y, cdf[1:-1], right=True)
        v = edges[j] + (y - cdf[j]) / density[j]
        return v.clamp(0.0, 1.0), 1.0 / density[j]

    def density_at(self, v: torch.Tensor) -> torch.Tensor:
        """The density at times v (B,) in [0, 1], float64."""
        edges = torch.tensor(self.edges, dtype=torch.float64, device=v.device)
        density = torch.tensor(self.density, dtype=torch.float64, device=v.device)
        return density[torch.bucketize(v.double(), edges[1:-1], right=True)]

    def as_dict(self) -> dict:
        return {"edges": list(self.edges), "density": list(self.density)}

    @classmethod
    def from_dict(cls, data: dict) -> TimeProposal:
        return cls(tuple(float(e) for e in data["edges"]), tuple(float(d) for d in data["density"]))


# Bins of v for a fitted proposal: finer near 0, where the integrand's variance lives.
PROPOSAL_EDGES = (0.0, 1 / 256, 1 / 128, 1 / 64, 1 / 32, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 3 / 4, 1.0)


def stratified(offset: torch.Tensor, k: int, draws: int) -> torch.Tensor:
    """The k-th of ``draws`` stratified uniforms, (offset + k / draws) mod 1, (B,)."""
    return (offset + k / draws) % 1.0


def time_quadrature(
    device: torch.device | str = "cpu", levels: int = 16, nodes: int = 8
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gauss–Legendre nodes v (J,) and weights (J,) on [0, 1], float64: ``nodes`` per interval
    on [0, 2^-levels] and on each [2^-(l+1), 2^-l], l < levels, so that integrands that vary
    on the scale of v itself near 0 (P(M | u) of a few masked tokens) are integrated to
    float64 precision. J = (levels + 1) · nodes."""
    x, w = np.polynomial.legendre.leggauss(nodes)
    bounds = [0.0] + [2.0**-level for level in range(levels, -1, -1)]
    v, weights = [], []
    for a, b in itertools.pairwise(bounds):
        v.append((b - a) / 2 * x + (a + b) / 2)
        weights.append((b - a) / 2 * w)
    return (
        torch.tensor(np.concatenate(v), dtype=torch.float64, device=device),
        torch.tensor(np.concatenate(weights), dtype=torch.float64, device=device),
    )
