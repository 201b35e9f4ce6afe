"""Likelihood bounds over a whole set of sequences, in the units papers report."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch

from diffusion import AbsorbingDiffusion, continuous_nelbo, discrete_nelbo
from diffusion.types import Denoiser

BOUNDS = ("discrete", "continuous")


def sequence_nelbo(
    diffusion: AbsorbingDiffusion,
    denoiser: Denoiser,
    x0: torch.Tensor,
    target_mask: torch.Tensor,
    bound: str,
    step_size: int = 1,
    mc_samples: int = 1,
    generator: torch.Generator | None = None,
    on_call: Callable[[], None] | None = None,
) -> torch.Tensor:
    """NELBO estimates in nats per sequence, (B, K) float64 (K = 1 for ``discrete``)."""
    if bound == "discrete":
        return discrete_nelbo(
            diffusion, denoiser, x0, target_mask, step_size, generator, on_call
        ).unsqueeze(-1)
    if bound == "continuous":
        return continuous_nelbo(
            diffusion, denoiser, x0, target_mask, mc_samples, generator, on_term=on_call
        )
    raise ValueError(f"--bound {bound!r} is unknown: choose one of {', '.join(BOUNDS)}")


@torch.no_grad()
def estimate_bound(
    diffusion: AbsorbingDiffusion,
    denoiser: Denoiser,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    bound: str,
    step_size: int = 1,
    mc_samples: int = 1,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> dict[str, float]:
    """Sum of per-sequence bounds over ``batches`` of (x0 (B, L), target_mask (B, L)).

    Returns nats per target token (and its standard error over sequences), perplexity per
    token, the number of sequences and tokens. Deterministic for a seed.
    """
    generator = torch.Generator(device=device).manual_seed(seed)
    per_sequence, tokens = [], []
    for x0, target_mask in batches:
        x0, target_mask = x0.to(device), target_mask.to(device)
        nelbo = sequence_nelbo(
            diffusion,
            denoiser,
            x0,
            target_mask,
            bound,
            step_size,
            mc_samples,
            generator,
        )
        per_sequence.append(nelbo.mean(-1).cpu())
        tokens.append(target_mask.sum(-1).cpu())
    values = torch.cat(per_sequence)
    counts = torch.cat(tokens).to(torch.float64)
    nats = values.sum().item() / counts.sum().item()
    se = (
        (values.std().item() * math.sqrt(len(values)) / counts.sum().item())
        if len(values) > 1
        else 0.0
    )
    return {
        "nats_per_token": nats,
        "nats_per_token_se": se,
        "ppl_per_token": math.exp(nats),
        "nats_per_sequence": values.mean().item(),
        "num_sequences": len(values),
        "num_tokens": int(counts.sum().item()),
    }
