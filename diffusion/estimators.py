"""Variance reduction for the continuous-time bound, each estimate still unbiased.

``plain``: K stratified times per sequence, u_k = eps + (1 − eps) · ((offset + k / K) mod 1),
and masks drawn iid from q(x_u | x0). At small u most draws mask nothing and score 0, and a
few mask one token and score about 1/u times its NLL: that 0-or-large split is most of the
variance.

``conditioned``: the same times, but every mask is drawn conditioned on masking at least one
target token and its score multiplied by P(at least one masked | u). The expectation is the
same (a draw that masks nothing scores exactly 0), and the 0-or-large split is gone. The
reconstruction step at u = eps is treated the same way.

``importance``: ``conditioned`` with the times drawn from a ``TimeProposal`` (a piecewise-
constant density of v = (u − eps) / (1 − eps), stratified in its inverse CDF), each draw's
score divided by the density at its time.

``rao_blackwell``: ``conditioned``'s draws, each score replaced by its expectation over the
time given the mask. For a network that does not see the time (``--timestep none``) the
network's output depends on the mask M only, so E[score | M] = ∫ P(M | u) f(u, M) du /
∫ P(M | u) / P(any | u) du, with f(u, M) = Σ_{i∈M} ρ_i(u) · (−log p_θ(x0_i | M)): two 1-D
integrals computed by quadrature (``time_quadrature``) with no further network call. The
0-or-large split and the 1/u weights are gone: a mask of k tokens scores about the mean NLL of
its tokens times the number of targets. It needs the true reveal rate ρ_i to be the model's
(no spindle, or the ``official`` protocol), and a time-agnostic network.

``rao_blackwell_cv``: ``rao_blackwell`` with a control variate. One more network call gives
every target token's NLL with all targets masked, g_i. The same score computed with g in
place of the network's NLLs has a known expectation, Σ_i g_i (1 − ᾱ_i(1)) (the bound of a
network that ignores the context), so each draw scores that plus the ``rao_blackwell`` score
of the differences nll_i − g_i: only what the context adds is left to Monte Carlo. Unbiased
for any g; its variance is small when the context changes the NLLs little.

``rao_blackwell_loo``: ``rao_blackwell`` with a leave-one-out control variate and no extra
call. Draw k's times are independent uniforms (not stratified), so the other draws tell
nothing about draw k's mask; v^(−k)_i, token i's mean NLL over the other draws that mask it (0
where none does), is then a fixed value for draw k, and draw k scores its ``rao_blackwell``
score minus the same score computed with v^(−k), plus that score's known expectation
Σ_i v^(−k)_i (1 − ᾱ_i(1)). Each draw stays unbiased; what is left to chance is how a token's
NLL moves with the rest of the mask. The draws share their values, so the standard error from
their spread is a large-K approximation. Same requirements as ``rao_blackwell``.

``antithetic``: draws in pairs: a stratified time v with mask uniforms U, then its mirror,
time 1 − v with uniforms 1 − U (where one masks a token the other tends to keep). Each draw
alone is a draw of ``plain``, so the average stays unbiased.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from diffusion.errors import ParameterError

ESTIMATORS = ("plain", "conditioned", "importance", "antithetic", "rao_blackwell",
              "rao_blackwell_cv", "rao_blackwell_loo")  # fmt: skip
RAO_BLACKWELL = ("rao_blackwell", "rao_blackwell_cv", "rao_blackwell_loo")
CARRY_RECONSTRUCTION = ("rao_blackwell", "rao_blackwell_loo")  # no call at eps
CONDITIONED = ("conditioned", "importance", *RAO_BLACKWELL)  # masks conditioned on one


def network_calls(estimator: str, draws: int) -> int:
    """Network calls of the continuous bound with ``draws`` draws: one each, plus the
    reconstruction at eps (which the draws of ``CARRY_RECONSTRUCTION`` carry) or the
    all-masked call of ``rao_blackwell_cv``."""
    return draws + (estimator not in CARRY_RECONSTRUCTION)


def check_estimator(estimator: str) -> None:
    """Raise ParameterError("estimator") unless it is one of ``ESTIMATORS``."""
    if estimator not in ESTIMATORS:
        choices = ", ".join(ESTIMATORS)
        raise ParameterError(
            "estimator", f"estimator {estimator!r} is unknown: choose one of {choices}"
        )


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
