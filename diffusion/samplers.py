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
from diffusion.types import Denoiser


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
        rate = diffusion.candidate_rate(u_t, u_s, xt, target_mask, masked, filtered, candidate)
        draw = torch.rand(rate.shape, generator=generator, device=xt.device, dtype=torch.float64)
        return torch.where(draw < rate, candidate, diffusion.mask_id)


class CachedSampler(AncestralSampler):
    """The ancestral chain, calling the network only when the last step revealed a token."""

    name: ClassVar[str] = "cached"
    time_agnostic_only: ClassVar[bool] = True

    def needs_call(self, previous: torch.Tensor | None, mask_id: int) -> bool:
        return previous is None or bool((previous != mask_id).any())  # the only CPU sync


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
        sampler: Sampler,
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
        if self.diffusion.schedule.spindle:
            h = self.diffusion.h.to(device=probs.device, dtype=probs.dtype)
            if self.expected is None:
                self.expected = probs.new_zeros(self.size)
            self.expected[slots] = probs @ h
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

    def candidate_rate(
        self,
        u_t: torch.Tensor,
        u_s: torch.Tensor,
        xs: torch.Tensor,
        target_mask: torch.Tensor,
        masked: torch.Tensor,
        candidate: torch.Tensor,
    ) -> torch.Tensor:
        """``AbsorbingDiffusion.candidate_rate`` from the cached expected information: the
        same arithmetic in the same order, without the (N, V) probabilities."""
        diffusion = self.diffusion
        if not diffusion.schedule.spindle:
            return diffusion.candidate_rate(u_t, u_s, xs, target_mask, masked, None, candidate)
        rows = masked.nonzero(as_tuple=True)[0]
        expected = self.expected[self.slots[masked]]
        h = diffusion.h.to(device=expected.device, dtype=expected.dtype)
        visible = h[xs] * (target_mask & ~masked)
        total = visible.sum(-1).index_add(0, rows, expected)
        mean = (total / target_mask.sum(-1).clamp_min(1))[rows].to(torch.float64)
        h64 = diffusion.h.to(device=expected.device, dtype=torch.float64)
        w = (h64[candidate] - mean).unsqueeze(-1)
        return diffusion.spindle_rate(u_t[rows], u_s[rows], w)[:, 0]

    def prediction(self, masked: torch.Tensor) -> torch.Tensor:
        """The cached argmax at the ``masked`` positions, (N,)."""
        return self.argmax[self.slots[masked]]


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
        rate = cache.candidate_rate(u_t, u_s, xt, target_mask, masked, candidate)
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
