"""Reverse-process samplers: ``ancestral``, ``cached`` (MDLM's ddpm_cache) and ``official``."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from diffusion.process import AbsorbingDiffusion
from diffusion.types import Denoiser

SAMPLERS = ("ancestral", "cached", "official")


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


@dataclass
class SamplingResult:
    """x0: (B, L) final ids; calls: network calls made; history: (step, x0-prediction) pairs."""

    x0: torch.Tensor
    calls: int
    history: list[tuple[int, torch.Tensor]]


def sample(
    diffusion: AbsorbingDiffusion,
    denoiser: Denoiser,
    xT: torch.Tensor,
    target_mask: torch.Tensor,
    num_steps: int,
    step_size: int = 1,
    sampler: str = "ancestral",
    temperature: float = 1.0,
    topk: int = 0,
    topp: float = 1.0,
    generator: torch.Generator | None = None,
    record_history: bool = False,
) -> SamplingResult:
    """Run the reverse process from time T' = ``num_steps`` down to 0 in strides of ``step_size``.

    Args:
        xT: (B, L) ids: [M] at the target positions, fixed tokens (e.g. a source) elsewhere.
        target_mask: (B, L) bool, the positions to generate.
        sampler: ``ancestral`` draws a candidate v ~ filtered p_θ(x0 | x_s) at each masked position
            and reveals it with the posterior rate r(v); ``cached`` is the same chain but reuses
            p_θ while x_s is unchanged (time-agnostic networks only); ``official`` filters and
            tempers the whole posterior including the [M] outcome (reference code).
    Returns:
        a SamplingResult; with the spindle the rates use candidate information (never x0).
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler {sampler!r} is unknown: choose one of {', '.join(SAMPLERS)}")
    if num_steps % step_size:
        raise ValueError(f"--step_size {step_size} must divide --num_steps {num_steps}")
    exact = AbsorbingDiffusion(diffusion.schedule, diffusion.mask_id, diffusion.h, "exact")
    xt = xT.clone()
    batch = xt.shape[0]
    calls, history = 0, []
    log_probs: torch.Tensor | None = None
    changed = True
    for s in range(num_steps, 0, -step_size):
        masked = (xt == diffusion.mask_id) & target_mask
        if not masked.any():
            break
        u_s = torch.full((batch,), s / num_steps, dtype=torch.float64, device=xt.device)
        u_t = torch.full(
            (batch,), (s - step_size) / num_steps, dtype=torch.float64, device=xt.device
        )
        if changed or sampler != "cached":
            log_probs = denoiser(xt, u_s, masked)
            calls += 1
        if sampler == "official":
            new = _official_step(
                exact,
                u_t,
                u_s,
                xt,
                target_mask,
                masked,
                log_probs,
                temperature,
                topk,
                topp,
                generator,
            )
        else:
            if temperature == 1.0 and topk == 0 and topp == 1.0:
                filtered = log_probs.exp()
            else:
                filtered = filter_log_probs(log_probs, temperature, topk, topp).exp()
            candidate = categorical(filtered, generator)
            rate = exact.candidate_rate(u_t, u_s, xt, target_mask, masked, filtered, candidate)
            draw = torch.rand(
                rate.shape, generator=generator, device=xt.device, dtype=torch.float64
            )
            new = torch.where(draw < rate, candidate, diffusion.mask_id)
        if record_history:
            prediction = xt.clone()
            prediction[masked] = log_probs.argmax(-1)
            history.append((s, prediction))
        xt = xt.clone()
        xt[masked] = new
        if sampler == "cached":  # the only sampler that needs this CPU sync
            changed = bool((new != diffusion.mask_id).any())
    return SamplingResult(xt, calls, history)


def _official_step(
    diffusion: AbsorbingDiffusion,
    u_t: torch.Tensor,
    u_s: torch.Tensor,
    xs: torch.Tensor,
    target_mask: torch.Tensor,
    masked: torch.Tensor,
    log_probs: torch.Tensor,
    temperature: float,
    topk: int,
    topp: float,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Reference sampler: the posterior over V with the [M] outcome in the [M] column, filtered."""
    probs = log_probs.to(torch.float64).exp()
    rate = diffusion.model_rate(u_t, u_s, xs, target_mask, masked, probs)
    posterior = probs * rate
    stay = (1.0 - posterior.sum(-1)).clamp_min(0.0)
    posterior[:, diffusion.mask_id] = stay
    filtered = filter_log_probs(posterior.log(), temperature, topk, topp).exp()
    return categorical(filtered, generator)
