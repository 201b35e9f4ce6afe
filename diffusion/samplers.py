"""Reverse-process samplers: one ``step`` each. ``SAMPLERS`` maps each name to its class.

- ``ancestral`` draws a candidate v ~ filtered p_θ(x0 | x_s) at each masked position and
  reveals it with the exact protocol's reveal rate r(v) (candidate information, never x0).
- ``cached`` (MDLM's ddpm_cache) is the same chain, but reuses p_θ while x_s is unchanged: for
  time-agnostic networks only.
- ``rowcache`` is the same chain again, caching p_θ per row (``RowCache``): a step forwards
  only the rows whose state changed since their last forward, as one smaller batch. For
  time-agnostic networks whose output for a row does not depend on the other rows.
- ``official`` is the reference code's sampler: the official protocol's posterior with the
  spindle term of the model's argmax x̂0, tempered and filtered as a whole including the [M]
  outcome.

Categorical draws are made in float64 by inverse CDF.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import ClassVar

import torch

from diffusion.errors import ParameterError
from diffusion.process import AbsorbingDiffusion
from diffusion.protocols import ExactProtocol, OfficialProtocol, ReverseProtocol
from diffusion.row_cache import RowCache


def filter_log_probs(
    log_probs: torch.Tensor, temperature: float = 1.0, topk: int = 0, topp: float = 1.0
) -> torch.Tensor:
    """Temperature, then top-k, then nucleus (top-p) filtering; renormalised float64 log-probs.

    Args:
        log_probs: (N, V). topk = 0 and topp = 1 switch those filters off.
    Returns:
        (N, V) float64 log-probabilities with filtered entries at −inf.
    """
    logits = log_probs.to(torch.float64) / temperature
    if topk > 0 and topk < logits.shape[-1]:
        kth = logits.topk(topk, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if topp < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        drop_sorted = cumulative - sorted_logits.softmax(-1) >= topp
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits.log_softmax(-1)


def categorical(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One draw per row of (N, V) probabilities by float64 inverse CDF. Returns (N,) ids."""
    cdf = torch.cumsum(probs, -1, dtype=torch.float64)  # accumulates in float64, no copy
    u = torch.rand(cdf.shape[0], 1, generator=generator, device=cdf.device, dtype=torch.float64)
    index = torch.searchsorted(cdf, u * cdf[:, -1:], right=True)
    return index.squeeze(-1).clamp_max(cdf.shape[-1] - 1)


class Sampler(ABC):
    """One reverse step x_s → x_t at the masked positions, with its filter settings.

    Args:
        temperature: > 0 and finite; topk: ≥ 0 (0: off); topp: in (0, 1] (1: off).
    Class attributes: ``name``; ``time_agnostic_only`` (the sampler is exact only for a
    network that ignores the time); ``protocol``, the reverse-model protocol its steps use;
    ``per_row`` (``sample`` keeps p_θ per row in a ``RowCache`` and calls ``cached_step``).
    """

    name: ClassVar[str]
    time_agnostic_only: ClassVar[bool] = False
    protocol: ClassVar[type[ReverseProtocol]] = ExactProtocol
    per_row: ClassVar[bool] = False  # ``sample`` drives it through a ``RowCache``

    def __init__(self, temperature: float = 1.0, topk: int = 0, topp: float = 1.0):
        if not (math.isfinite(temperature) and temperature > 0):
            raise ParameterError(
                "temperature", f"temperature must be > 0 and finite, got {temperature}"
            )
        if topk < 0:
            raise ParameterError("topk", f"topk must be ≥ 0 (0 switches it off), got {topk}")
        if not 0 < topp <= 1:
            raise ParameterError("topp", f"topp must be in (0, 1] (1 switches it off), got {topp}")
        self.temperature, self.topk, self.topp = temperature, topk, topp

    @property
    def filters(self) -> bool:
        """Whether any of temperature, top-k or top-p changes a distribution."""
        return not (self.temperature == 1.0 and self.topk == 0 and self.topp == 1.0)

    def filtered_probs(self, log_probs: torch.Tensor) -> torch.Tensor:
        """The filtered probabilities of log-probabilities (N, V): (N, V)."""
        if not self.filters:
            return log_probs.exp()
        return filter_log_probs(log_probs, self.temperature, self.topk, self.topp).exp()

    def needs_call(self, previous: torch.Tensor | None, mask_id: int) -> bool:
        """Whether the network must be called again, given the ids (N,) the previous step
        wrote (None before the first step)."""
        return True

    @abstractmethod
    def step(
        self,
        diffusion: AbsorbingDiffusion,
        xt: torch.Tensor,
        target_mask: torch.Tensor,
        masked: torch.Tensor,
        log_probs: torch.Tensor,
        u_t: torch.Tensor,
        u_s: torch.Tensor,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        """The new ids at the masked positions, (N,) ([M] where a position stays masked).

        Args:
            diffusion: with this sampler's ``protocol``.
            xt: (B, L) current ids (time u_s); target_mask, masked: (B, L) bool.
            log_probs: log p_θ(x0 | x_s) at the masked positions, (N, V).
            u_t, u_s: (B,) float64 times, u_t < u_s.
        """


class AncestralSampler(Sampler):
    """Candidate v ~ filtered p_θ, revealed with probability r(v)."""

    name: ClassVar[str] = "ancestral"

    def step(self, diffusion, xt, target_mask, masked, log_probs, u_t, u_s, generator):
        filtered = self.filtered_probs(log_probs)
        candidate = categorical(filtered, generator)
        expected = diffusion.expected_information(filtered)
        rate = diffusion.candidate_rate(u_t, u_s, xt, target_mask, masked, expected, candidate)
        draw = torch.rand(rate.shape, generator=generator, device=xt.device, dtype=torch.float64)
        return torch.where(draw < rate, candidate, diffusion.mask_id)


class CachedSampler(AncestralSampler):
    """The ancestral chain, calling the network only when the last step revealed a token."""

    name: ClassVar[str] = "cached"
    time_agnostic_only: ClassVar[bool] = True

    def needs_call(self, previous: torch.Tensor | None, mask_id: int) -> bool:
        return previous is None or bool((previous != mask_id).any())  # the only CPU sync


class RowCacheSampler(AncestralSampler):
    """The ancestral chain with p_θ cached per row (``RowCache``): a row is forwarded only
    after a step that revealed one of its positions, so at most 1 + (steps in which the row
    revealed something) row forwards, ≤ 1 + its length, at any T'. Same draws, in the same
    order and shapes, as ``ancestral``: the same seed gives the same samples."""

    name: ClassVar[str] = "rowcache"
    time_agnostic_only: ClassVar[bool] = True
    per_row: ClassVar[bool] = True

    def cached_step(
        self,
        diffusion: AbsorbingDiffusion,
        xt: torch.Tensor,
        target_mask: torch.Tensor,
        masked: torch.Tensor,
        cache: RowCache,
        u_t: torch.Tensor,
        u_s: torch.Tensor,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        """``step`` with p_θ read from ``cache`` (updated for this xt)."""
        candidate = cache.categorical(masked, generator)
        expected = cache.expected_at(masked)
        rate = diffusion.candidate_rate(u_t, u_s, xt, target_mask, masked, expected, candidate)
        draw = torch.rand(rate.shape, generator=generator, device=xt.device, dtype=torch.float64)
        return torch.where(draw < rate, candidate, diffusion.mask_id)


class OfficialSampler(Sampler):
    """The reference sampler (``predict.py`` of the reference code), exactly.

    At each masked position i: x̂0 = argmax p_θ at the masked positions (the visible tokens are
    their own), w_i = h(x̂0_i) − the mean of h(x̂0_j) over the sequence's target positions
    (the whole sequence in the reference's unconditional sampler), and the official protocol's
    posterior with the 0.999 cap: P(v) ∝ p_θ(v) ᾱ_t^i (1 − ᾱ_s / ᾱ_t), P([M]) ∝ 1 − ᾱ_t^i
    (ᾱ without i: the base schedule). That whole vector over V, [M] included, is tempered and
    filtered, then sampled. Without the spindle it is the exact posterior's.
    """

    name: ClassVar[str] = "official"
    protocol: ClassVar[type[ReverseProtocol]] = OfficialProtocol

    def posterior(self, diffusion, xt, target_mask, masked, log_probs, u_t, u_s) -> torch.Tensor:
        """The filtered posterior over x_t at the masked positions, (N, V) float64, with the
        [M] outcome in the [M] column. Arguments as ``step``."""
        probs = log_probs.to(torch.float64).exp()
        w = None
        if diffusion.schedule.spindle:
            argmax = xt.clone()
            argmax[masked] = log_probs.argmax(-1)
            w = diffusion.centred(argmax, target_mask)
        rate = diffusion.posterior_rate(u_t, u_s, w).expand(xt.shape)[masked].unsqueeze(-1)
        posterior = probs * rate.to(probs.dtype)
        stay = (1.0 - posterior.sum(-1)).clamp_min(0.0)
        posterior[:, diffusion.mask_id] = stay
        return filter_log_probs(posterior.log(), self.temperature, self.topk, self.topp).exp()

    def step(self, diffusion, xt, target_mask, masked, log_probs, u_t, u_s, generator):
        posterior = self.posterior(diffusion, xt, target_mask, masked, log_probs, u_t, u_s)
        return categorical(posterior, generator)


SAMPLERS: dict[str, type[Sampler]] = {
    cls.name: cls for cls in (AncestralSampler, CachedSampler, RowCacheSampler, OfficialSampler)
}


def make_sampler(name: str, temperature: float = 1.0, topk: int = 0, topp: float = 1.0) -> Sampler:
    """The sampler called ``name`` with these filters; ParameterError("sampler") if unknown."""
    if name not in SAMPLERS:
        raise ParameterError(
            "sampler", f"sampler {name!r} is unknown: choose one of {', '.join(SAMPLERS)}"
        )
    return SAMPLERS[name](temperature, topk, topp)
