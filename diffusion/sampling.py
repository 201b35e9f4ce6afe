"""The reverse process: ``sample`` runs a ``diffusion.samplers.Sampler`` from x_T down to x_0."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from diffusion.errors import check_step_size
from diffusion.process import AbsorbingDiffusion
from diffusion.samplers import RowCache, Sampler
from diffusion.types import Denoiser


@dataclass
class SamplingResult:
    """x0: (B, L) final ids; calls: network calls made; history: (step, x0-prediction,
    masked) per step, the prediction (B, L) x_s with the argmax of p_θ at its masked positions
    and masked (B, L) bool those positions; row_forwards: rows
    the network was run on, summed over calls (B per call, except for a ``per_row`` sampler,
    which forwards only the rows that changed; a guided row counts once)."""

    x0: torch.Tensor
    calls: int
    history: list[tuple[int, torch.Tensor, torch.Tensor]]
    row_forwards: int = 0


def sample(
    diffusion: AbsorbingDiffusion,
    denoiser: Denoiser,
    xT: torch.Tensor,
    target_mask: torch.Tensor,
    sampler: Sampler,
    num_steps: int,
    step_size: int = 1,
    generator: torch.Generator | None = None,
    record_history: bool = False,
) -> SamplingResult:
    """Run the reverse process from time T' = ``num_steps`` down to 0 in strides of ``step_size``.

    Args:
        xT: (B, L) ids: [M] at the target positions, fixed tokens (e.g. a source) elsewhere.
        target_mask: (B, L) bool, the positions to generate.
        sampler: the step rule and its filters (``make_sampler``); its steps use the sampler's
            protocol, whatever ``diffusion.protocol`` is.
            A ``per_row`` sampler (``rowcache``) keeps p_θ per row and forwards only the rows
            that changed since their last forward (``RowCache``).
        num_steps: the number of sampling steps T'; time u = t / T'. This is not the training
            T: any T' works for a network that takes u in [0, 1].
        step_size: stride S, a divisor of ``num_steps`` (ParameterError("step_size") otherwise).
        record_history: keep the argmax x0-prediction of every step.
    Returns:
        a SamplingResult.
    """
    check_step_size(num_steps, step_size)
    diffusion = replace(diffusion, protocol=sampler.protocol())
    xt = xT.clone()
    batch = xt.shape[0]
    if sampler.per_row:
        return _sample_per_row(diffusion, denoiser, xt, target_mask, sampler, num_steps,
                               step_size, generator, record_history)  # fmt: skip
    calls, history = 0, []
    log_probs: torch.Tensor | None = None
    new: torch.Tensor | None = None
    for s in range(num_steps, 0, -step_size):
        masked = (xt == diffusion.mask_id) & target_mask
        if not masked.any():
            break
        u_t, u_s = _times(s, step_size, num_steps, batch, xt.device)
        if sampler.needs_call(new, diffusion.mask_id):
            log_probs = denoiser(xt, u_s, masked)
            calls += 1
        new = sampler.step(diffusion, xt, target_mask, masked, log_probs, u_t, u_s, generator)
        if record_history:
            prediction = xt.clone()
            prediction[masked] = log_probs.argmax(-1)
            history.append((s, prediction, masked.clone()))
        xt = xt.clone()
        xt[masked] = new
    return SamplingResult(xt, calls, history, calls * batch)


def _sample_per_row(
    diffusion: AbsorbingDiffusion,
    denoiser: Denoiser,
    xt: torch.Tensor,
    target_mask: torch.Tensor,
    sampler: Sampler,
    num_steps: int,
    step_size: int,
    generator: torch.Generator | None,
    record_history: bool,
) -> SamplingResult:
    """``sample``'s loop for a ``per_row`` sampler: p_θ kept per row in a ``RowCache``."""
    batch, history = xt.shape[0], []
    cache = RowCache(sampler, diffusion, target_mask, keep_argmax=record_history)
    for s in range(num_steps, 0, -step_size):
        masked = (xt == diffusion.mask_id) & target_mask
        if not masked.any():
            break
        u_t, u_s = _times(s, step_size, num_steps, batch, xt.device)
        cache.update(denoiser, xt, u_s, masked)
        new = sampler.cached_step(diffusion, xt, target_mask, masked, cache, u_t, u_s, generator)
        if record_history:
            prediction = xt.clone()
            prediction[masked] = cache.prediction(masked)
            history.append((s, prediction, masked.clone()))
        xt = xt.clone()
        xt[masked] = new
    return SamplingResult(xt, cache.calls, history, cache.row_forwards)


def _times(
    s: int, step_size: int, num_steps: int, batch: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """u_t and u_s (B,) float64 of the step from s to t = s − step_size of T' = num_steps."""
    u_s = torch.full((batch,), s / num_steps, dtype=torch.float64, device=device)
    u_t = torch.full((batch,), (s - step_size) / num_steps, dtype=torch.float64, device=device)
    return u_t, u_s
