"""The time proposal of the ``importance`` estimator, fitted on a pilot of the data itself."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from corpora.collate import collate
from diffusion import PROPOSAL_EDGES, AbsorbingDiffusion, KeyedNoise, TimeProposal
from diffusion.elbo import continuous_draws
from diffusion.types import Denoiser
from evaluation.sentences import noise_keys

PILOT_SENTENCES = 32
PILOT_DRAWS = 8


def pilot_calls(num_sentences: int, batch_size: int) -> int:
    """Network calls ``fit_proposal`` makes (counted into a result's cost)."""
    n = min(num_sentences, PILOT_SENTENCES)
    return -(-n // batch_size) * (PILOT_DRAWS + 1)


@torch.no_grad()
def fit_proposal(
    diffusion: AbsorbingDiffusion,
    denoiser: Denoiser,
    ids: Sequence[Sequence[int]],
    sentence_ids: Sequence[str],
    pad_id: int,
    seed: int,
    batch_size: int,
    device: torch.device | str = "cpu",
) -> TimeProposal:
    """``TimeProposal.fit`` on the conditioned integrand of the first 32 sentences, 8 stratified
    uniform times each, with noise keyed apart from the bound's own (seed, "pilot")."""
    n = min(len(ids), PILOT_SENTENCES)
    keys = noise_keys(seed, [f"pilot:{sid}" for sid in sentence_ids[:n]])
    times, values = [], []
    for start in range(0, n, batch_size):
        x0, target_mask = collate(list(ids[start : min(n, start + batch_size)]), pad_id)
        noise = KeyedNoise(keys[start : start + len(x0)], target_mask, PILOT_DRAWS + 1, device)
        draws = continuous_draws(
            diffusion, denoiser, x0.to(device), target_mask.to(device), PILOT_DRAWS,
            noise=noise, estimator="conditioned",
        )  # fmt: skip
        times.append(draws.times.flatten().cpu())
        values.append(draws.values.flatten().cpu())
    return TimeProposal.fit(torch.cat(times), torch.cat(values), PROPOSAL_EDGES)
