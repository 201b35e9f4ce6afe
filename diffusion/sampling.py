"""The reverse process: ``sample`` runs a ``diffusion.samplers.Sampler`` from x_T down to x_0."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from diffusion.errors import check_step_size
from diffusion.process import AbsorbingDiffusion
from diffusion.samplers import Sampler
from diffusion.types import Denoiser


@dataclass
class SamplingResult:
    """x0: (B, L) final ids; calls: network calls made; history: (step, x0-prediction) pairs,
    each prediction (B, L) with the argmax of p_θ at the masked positions."""

    x0: torch.Tensor
    calls: int
    history: list[tuple[int, torch.Tensor]]


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
    calls, history = 0, []
    log_probs: torch.Tensor | None = None
    new: torch.Tensor | None = None
    for s in range(num_steps, 0, -step_size):
        masked = (xt == diffusion.mask_id) & target_mask
        if not masked.any():
            break
        u_s = torch.full((batch,), s / num_steps, dtype=torch.float64, device=xt.device)
        u_t = torch.full(
            (batch,), (s - step_size) / num_steps, dtype=torch.float64, device=xt.device
        )
        if sampler.needs_call(new, diffusion.mask_id):
            log_probs = denoiser(xt, u_s, masked)
            calls += 1
        new = sampler.step(diffusion, xt, target_mask, masked, log_probs, u_t, u_s, generator)
        if record_history:
            prediction = xt.clone()
            prediction[masked] = log_probs.argmax(-1)
            history.append((s, prediction))
        xt = xt.clone()
        xt[masked] = new
    return SamplingResult(xt, calls, history)
