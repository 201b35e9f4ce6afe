"""What a continuous-bound estimate works on and returns: ``BoundBatch`` (one batch to bound,
its noise and its running tallies) and ``ContinuousDraws`` (the estimate's parts). The
estimators themselves are in ``diffusion.estimators``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from diffusion.draws import conditioned_mask
from diffusion.noise import BatchNoise, KeyedNoise
from diffusion.process import AbsorbingDiffusion
from diffusion.types import Denoiser

NoiseSource = BatchNoise | KeyedNoise


@dataclass
class ContinuousDraws:
    """What one continuous-bound estimate is made of. ``values`` (B, K): each draw's estimate
    of the bound without the reconstruction call; ``times`` (B, K): its v = (u − eps) /
    (1 − eps); ``reconstruction`` (B,): the reconstruction call's term (0 when the draws
    carry it). Where in t the bound lies: ``integral`` (B, K), each draw's share at its own
    time; ``reconstruction_share`` (B,), the draws' mean share at u = eps; ``profile`` (B, L)
    or None, fixed per-token NLLs (a control variate's) whose bound, Σ_i profile_i (1 −
    ᾱ_i(1)), is in every draw's value. So values.mean(1) = integral.mean(1) +
    reconstruction_share + that bound."""

    values: torch.Tensor
    times: torch.Tensor
    reconstruction: torch.Tensor
    integral: torch.Tensor
    reconstruction_share: torch.Tensor
    profile: torch.Tensor | None = None


@dataclass
class BoundBatch:
    """One batch to bound and the running tallies of its estimate: x0, target_mask (B, L);
    ``values``, ``times``, ``integral``, ``shares`` (B, K) float64 as in ``ContinuousDraws``
    (``shares``: each draw's share at u = eps); ``offsets`` (B,) the stratified times' offset.
    ``baseline_nll`` (B, L) and ``baseline`` (B,) are a control variate's fixed NLLs and their
    known bound (0 without one); ``nlls`` and ``masks`` keep every draw's (B, L) NLLs and mask
    for estimators that look back."""

    diffusion: AbsorbingDiffusion
    denoiser: Denoiser
    x0: torch.Tensor
    target_mask: torch.Tensor
    mc_samples: int
    eps: float
    noise: NoiseSource
    values: torch.Tensor = field(init=False)
    times: torch.Tensor = field(init=False)
    integral: torch.Tensor = field(init=False)
    shares: torch.Tensor = field(init=False)
    offsets: torch.Tensor = field(init=False)
    baseline_nll: torch.Tensor = field(init=False)
    baseline: torch.Tensor = field(init=False)
    nlls: list[torch.Tensor] = field(default_factory=list)
    masks: list[torch.Tensor] = field(default_factory=list)

    def __post_init__(self) -> None:
        x0 = self.x0
        self.values = torch.zeros(
            x0.shape[0], self.mc_samples, dtype=torch.float64, device=x0.device
        )
        self.times = torch.zeros_like(self.values)
        self.integral = torch.zeros_like(self.values)
        self.shares = torch.zeros_like(self.values)
        self.baseline_nll = torch.zeros(x0.shape, dtype=torch.float64, device=x0.device)
        self.baseline = torch.zeros(x0.shape[0], dtype=torch.float64, device=x0.device)

    def zeros(self) -> torch.Tensor:
        """(B,) float64 zeros."""
        return torch.zeros(self.x0.shape[0], dtype=torch.float64, device=self.x0.device)

    def mask(self, u: torch.Tensor, call: int, conditioned: bool):
        """x_u (B, L), masked (B, L) and the factor (B,) its score is multiplied by, from the
        noise of network call ``call``: 1 for a mask drawn from q(x_u | x0), P(at least one
        masked) for one conditioned on it."""
        diffusion, x0, target_mask = self.diffusion, self.x0, self.target_mask
        if not conditioned:
            xt, masked = diffusion.q_sample(
                x0, target_mask, u, discrete=False, draw=self.noise.mask(call)
            )
            return xt, masked, torch.ones_like(u)
        keep = diffusion.alpha_bar(u, diffusion.centred(x0, target_mask), discrete=False)
        masked, p_any = conditioned_mask(
            keep, target_mask, self.noise.pick(call), self.noise.mask(call)
        )
        return x0.masked_fill(masked, diffusion.mask_id), masked, p_any
