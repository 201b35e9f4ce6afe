"""Training objectives: the paper's discrete-time ``d3pm`` and MDLM's continuous-time ``mdlm``.

``OBJECTIVES`` maps each name to its loss function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from diffusion.kl import masked_kl, reveal_kl
from diffusion.process import AbsorbingDiffusion
from diffusion.types import Denoiser, target_log_probs


@dataclass
class Noise:
    """The uniforms one loss evaluation consumes: ``time`` (B,) in [0, 1) picks t (d3pm) or u
    (mdlm) per sequence, ``mask`` (B, L) decides which tokens are masked. Drawing them outside
    the loss lets a caller give every example the same noise however the batch is split
    across processes."""

    time: torch.Tensor
    mask: torch.Tensor

    @classmethod
    def draw(
        cls, batch: int, length: int, generator: torch.Generator | None, device: torch.device
    ) -> Noise:
        time = torch.rand(batch, generator=generator, device=device, dtype=torch.float64)
        mask = torch.rand(batch, length, generator=generator, device=device, dtype=torch.float64)
        return cls(time, mask)


@dataclass
class LossOutput:
    """``loss``: what is back-propagated (summed over target tokens, divided by batch size).

    ``total`` (detached) is the summed objective, ``num_masked`` the number of scored positions,
    ``nats`` (detached) the objective on the likelihood bound's scale, summed over the batch:
    a one-draw unbiased estimate of the T-step NELBO (``d3pm``: T × the sampled step's KL,
    without the hybrid term) or of MDLM's continuous objective from eps to 1 (``mdlm``; the
    continuous bound's integral where the reveal rates do not depend on the candidate).
    """

    loss: torch.Tensor
    total: torch.Tensor
    num_masked: torch.Tensor
    nats: torch.Tensor


def d3pm_loss(
    diffusion: AbsorbingDiffusion,
    denoiser: Denoiser,
    x0: torch.Tensor,
    target_mask: torch.Tensor,
    hybrid_lambda: float = 0.01,
    per_sequence_t: bool = False,
    generator: torch.Generator | None = None,
    noise: Noise | None = None,
) -> LossOutput:
    """Σ_masked KL(q(x_t | x_{t+1}, x0) ‖ p_θ(x_t | x_{t+1})) + hybrid_lambda · CE, over B.

    One t ~ U{0, …, T−1} for the batch (reference; from ``noise.time[0]``) or one per
    sequence; at t = 0 the KL is the cross-entropy of x0. Args: x0 (B, L) ids, target_mask
    (B, L) bool; ``noise`` is drawn from ``generator`` when omitted.
    """
    batch = x0.shape[0]
    noise = noise or Noise.draw(batch, x0.shape[1], generator, x0.device)
    time = noise.time if per_sequence_t else noise.time[:1].expand(batch)
    t = (time * diffusion.num_steps).floor().clamp(max=diffusion.num_steps - 1)
    u_t, u_s = t / diffusion.num_steps, (t + 1) / diffusion.num_steps
    xs, masked = diffusion.q_sample(x0, target_mask, u_s, draw=noise.mask)
    if diffusion.candidate_rates:
        log_probs = denoiser(xs, u_s, masked)
        kl, log_p_x0 = masked_kl(diffusion, u_t, u_s, x0, xs, target_mask, masked, log_probs)
    else:
        log_p_x0 = target_log_probs(denoiser, xs, u_s, masked, x0[masked])
        kl = reveal_kl(diffusion, u_t, u_s, x0, target_mask, masked, log_p_x0)
    total = kl.sum() - hybrid_lambda * log_p_x0.sum()
    nats = diffusion.num_steps * kl.detach().sum().to(torch.float64)
    return LossOutput(total / batch, total.detach(), masked.sum(), nats)


def antithetic(offset: torch.Tensor, batch: int) -> torch.Tensor:
    """Low-discrepancy uniforms (offset + i / B) mod 1, i = 0..B−1, from one offset (1,)."""
    i = torch.arange(batch, device=offset.device, dtype=torch.float64)
    return (offset + i / batch) % 1.0


def mdlm_loss(
    diffusion: AbsorbingDiffusion,
    denoiser: Denoiser,
    x0: torch.Tensor,
    target_mask: torch.Tensor,
    generator: torch.Generator | None = None,
    eps: float = 1e-3,
    noise: Noise | None = None,
) -> LossOutput:
    """Σ_masked −ᾱ'^i(u) / (1 − ᾱ^i(u)) · (−log p_θ(x0^i | x_u)), divided by B.

    Args: x0 (B, L) ids, target_mask (B, L) bool. u = eps + (1 − eps) · ``noise.time``; when
    ``noise`` is omitted the times are drawn antithetically over the batch.
    """
    diffusion.schedule.require_continuous()
    batch = x0.shape[0]
    if noise is None:
        noise = Noise.draw(batch, x0.shape[1], generator, x0.device)
        noise.time = antithetic(noise.time[:1], batch)
    u = eps + (1.0 - eps) * noise.time
    xt, masked = diffusion.q_sample(x0, target_mask, u, discrete=False, draw=noise.mask)
    log_p_x0 = target_log_probs(denoiser, xt, u, masked, x0[masked])
    weight = diffusion.schedule.loss_weight(u, diffusion.centred(x0, target_mask))
    total = -(weight.expand_as(x0)[masked].to(log_p_x0.dtype) * log_p_x0).sum()
    nats = (1.0 - eps) * total.detach().to(torch.float64)  # u = eps + (1 − eps) · v
    return LossOutput(total / batch, total.detach(), masked.sum(), nats)


OBJECTIVES: dict[str, Callable[..., LossOutput]] = {"d3pm": d3pm_loss, "mdlm": mdlm_loss}
