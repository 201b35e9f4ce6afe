"""Training objectives: the paper's discrete-time ``d3pm`` and MDLM's continuous-time ``mdlm``."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from diffusion.process import AbsorbingDiffusion, masked_kl
from diffusion.types import Denoiser

OBJECTIVES = ("d3pm", "mdlm")


@dataclass
class LossOutput:
    """``loss``: what is back-propagated (summed over target tokens, divided by batch size).

    ``total`` (detached) is the summed objective, ``num_masked`` the number of scored positions.
    """

    loss: torch.Tensor
    total: torch.Tensor
    num_masked: torch.Tensor


def d3pm_loss(
    diffusion: AbsorbingDiffusion,
    denoiser: Denoiser,
    x0: torch.Tensor,
    target_mask: torch.Tensor,
    hybrid_lambda: float = 0.01,
    per_sequence_t: bool = False,
    generator: torch.Generator | None = None,
) -> LossOutput:
    """Σ_masked KL(q(x_t | x_{t+1}, x0) ‖ p_θ(x_t | x_{t+1})) + hybrid_lambda · CE, over B.

    One t ~ U{0, …, T−1} for the batch (reference) or one per sequence; at t = 0 the KL is the
    cross-entropy of x0. Args: x0 (B, L) ids, target_mask (B, L) bool.
    """
    batch = x0.shape[0]
    shape = (batch,) if per_sequence_t else (1,)
    t = torch.randint(
        0, diffusion.num_steps, shape, generator=generator, device=x0.device
    )
    t = t.expand(batch).to(torch.float64)
    u_t, u_s = t / diffusion.num_steps, (t + 1) / diffusion.num_steps
    xs, masked = diffusion.q_sample(x0, target_mask, u_s, generator)
    log_probs = denoiser(xs, u_s, masked)
    kl = masked_kl(diffusion, u_t, u_s, x0, xs, target_mask, masked, log_probs)
    ce = -log_probs.gather(-1, x0[masked].unsqueeze(-1)).squeeze(-1)
    total = kl.sum() + hybrid_lambda * ce.sum()
    return LossOutput(total / batch, total.detach(), masked.sum())


def antithetic_times(
    batch: int,
    generator: torch.Generator | None,
    device: torch.device,
    eps: float = 1e-3,
) -> torch.Tensor:
    """Low-discrepancy u ∈ [eps, 1]: (u0 + i / B) mod 1, rescaled. Shape (B,), float64."""
    u0 = torch.rand(1, generator=generator, device=device, dtype=torch.float64)
    u = (u0 + torch.arange(batch, device=device, dtype=torch.float64) / batch) % 1.0
    return eps + (1.0 - eps) * u


def mdlm_loss(
    diffusion: AbsorbingDiffusion,
    denoiser: Denoiser,
    x0: torch.Tensor,
    target_mask: torch.Tensor,
    generator: torch.Generator | None = None,
    eps: float = 1e-3,
) -> LossOutput:
    """Σ_masked −ᾱ'^i(u) / (1 − ᾱ^i(u)) · (−log p_θ(x0^i | x_u)), divided by B.

    Args: x0 (B, L) ids, target_mask (B, L) bool. u is drawn antithetically over the batch.
    """
    batch = x0.shape[0]
    u = antithetic_times(batch, generator, x0.device, eps)
    xt, masked = diffusion.q_sample(x0, target_mask, u, generator, discrete=False)
    log_probs = denoiser(xt, u, masked)
    weight = diffusion.schedule.loss_weight(u, diffusion.centred(x0, target_mask))
    weight = weight.expand_as(x0)[masked].to(log_probs.dtype)
    ce = -log_probs.gather(-1, x0[masked].unsqueeze(-1)).squeeze(-1)
    total = (weight * ce).sum()
    return LossOutput(total / batch, total.detach(), masked.sum())
