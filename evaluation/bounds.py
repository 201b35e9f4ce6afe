"""Likelihood bounds over a whole set of sequences, in the units papers report.

Shared by compute_elbo.py and the dev evaluation of main.py.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from tqdm.auto import tqdm

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
) -> torch.Tensor:
    """NELBO estimates in nats per sequence, (B, K) float64 (K = 1 for ``discrete``).

    Args: x0 (B, L) ids, target_mask (B, L) bool. Conditional on the number of target tokens.
    """
    if bound == "discrete":
        return discrete_nelbo(diffusion, denoiser, x0, target_mask, step_size, generator).unsqueeze(
            -1
        )
    if bound == "continuous":
        return continuous_nelbo(diffusion, denoiser, x0, target_mask, mc_samples, generator)
    raise ValueError(f"--bound {bound!r} is unknown: choose one of {', '.join(BOUNDS)}")


@torch.no_grad()
def sequence_bounds(
    diffusion: AbsorbingDiffusion,
    denoiser: Denoiser,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    bound: str,
    step_size: int = 1,
    mc_samples: int = 1,
    seed: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = False,
    total: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sequence NELBO draws (N, K) float64 and target-token counts (N,), on the CPU.

    ``batches`` yields (x0 (B, L), target_mask (B, L)); deterministic for a seed.
    """
    generator = torch.Generator(device=device).manual_seed(seed)
    values, tokens = [], []
    for x0_cpu, mask_cpu in tqdm(batches, total=total, disable=not progress, desc="bound"):
        x0, target_mask = x0_cpu.to(device), mask_cpu.to(device)
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
        values.append(nelbo.cpu())
        tokens.append(target_mask.sum(-1).cpu())
    return torch.cat(values), torch.cat(tokens)


def length_nll(length_counts: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """−log p(length) from the training split's length histogram (D3PM's ``length_probs``).

    Add-one smoothing over lengths 1..max so an unseen length has a finite cost.
    Args: length_counts (max_length + 1,), lengths (N,). Returns (N,) float64.
    """
    counts = length_counts.to(torch.float64).clone()
    counts[1:] += 1.0
    counts[0] = 0.0
    log_p = counts.log() - counts.sum().log()
    lengths = lengths.clamp(max=len(counts) - 1)
    return -log_p[lengths]


def summarise(
    values: torch.Tensor,
    tokens: torch.Tensor,
    words: torch.Tensor | None = None,
    extra_nll: torch.Tensor | None = None,
) -> dict[str, float]:
    """Figures for a set: NLL per token (± standard error over sequences), bits per token,
    perplexity per token and per word, mean NLL per sequence.

    Args: values (N, K) bound draws; tokens, words (N,); extra_nll (N,) added per sequence
    (−log p(length) for the full-sequence bound).
    """
    per_sequence = values.to(torch.float64).mean(-1)
    if extra_nll is not None:
        per_sequence = per_sequence + extra_nll
    n = len(per_sequence)
    num_tokens = tokens.sum().item()
    nats = per_sequence.sum().item() / num_tokens
    se = per_sequence.std().item() * math.sqrt(n) / num_tokens if n > 1 else 0.0
    out = {
        "nats_per_token": nats,
        "nats_per_token_se": se,
        "bits_per_token": nats / math.log(2),
        "ppl_per_token": math.exp(nats),
        "nats_per_sequence": per_sequence.mean().item(),
        "nats_per_sequence_se": per_sequence.std().item() / math.sqrt(n) if n > 1 else 0.0,
        "num_sequences": n,
        "num_tokens": int(num_tokens),
    }
    if words is not None:
        out["num_words"] = int(words.sum().item())
        out["ppl_per_word"] = math.exp(per_sequence.sum().item() / max(words.sum().item(), 1))
    return out


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
    """``summarise`` of ``sequence_bounds``: the given-length bound of a set."""
    values, tokens = sequence_bounds(
        diffusion, denoiser, batches, bound, step_size, mc_samples, seed, device
    )
    return summarise(values, tokens)
