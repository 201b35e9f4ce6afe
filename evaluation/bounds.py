"""Likelihood bounds over a whole set of sequences, in the units papers report.

Shared by compute_elbo.py and the dev evaluation of main.py.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch

from common.progress import CallCounter
from common.progress import progress as progress_bar
from diffusion import (
    AbsorbingDiffusion,
    BatchNoise,
    ContinuousDraws,
    KeyedNoise,
    TimeProposal,
    continuous_draws,
    discrete_terms,
)
from diffusion.estimators import network_calls
from diffusion.types import Denoiser
from evaluation.stats import ratio_se

BOUNDS = ("discrete", "continuous")
CONTINUOUS_EPS = 1e-3  # continuous_nelbo's default eps
TERM_BUCKETS = 16


def calls_per_batch(
    bound: str, num_steps: int, step_size: int, mc_samples: int, estimator: str = "plain"
) -> int:
    """Network calls one batch of ``sequence_nelbo`` makes: T/S terms, or the continuous
    bound's (``diffusion.estimators.network_calls``)."""
    if bound == "discrete":
        return num_steps // step_size
    return network_calls(estimator, mc_samples)


class Terms:
    """The bound of a set split by time: nats (summed over sequences) per t bucket.

    ``add_discrete`` and ``add_continuous`` add an estimate's parts, as the bound returns
    them; ``figures(tokens)`` divides by the number of target tokens, so the buckets and
    ``reconstruction`` add up to the given-length ``nats_per_token`` (the same draws, not new
    ones).
    """

    def __init__(self, buckets: int = TERM_BUCKETS):
        self.edges = torch.linspace(0.0, 1.0, buckets + 1, dtype=torch.float64)
        self.nats = torch.zeros(buckets, dtype=torch.float64)
        self.draws = torch.zeros(buckets, dtype=torch.int64)
        self.reconstruction = 0.0

    def add(self, u: torch.Tensor, nats: torch.Tensor, weight: float) -> None:
        """u (B,) times of the call's rows, nats (B,) their terms, scaled by ``weight``."""
        index = torch.bucketize(u.double().cpu(), self.edges[1:-1], right=True)
        self.nats.index_add_(0, index, nats.double().cpu() * weight)
        self.draws.index_add_(0, index, torch.ones_like(index))

    def add_profile(self, nats: torch.Tensor, reconstruction: float) -> None:
        """A known part of the bound, not a draw: nats (buckets,) per t bucket and its
        reconstruction share (``rao_blackwell_cv``'s control variate)."""
        self.nats += nats.double().cpu()
        self.reconstruction += reconstruction

    def figures(self, tokens: int) -> dict:
        return {
            "t_low": self.edges[:-1].tolist(),
            "t_high": self.edges[1:].tolist(),
            "nats_per_token": (self.nats / tokens).tolist(),
            "draws": self.draws.tolist(),
            "reconstruction_nats_per_token": self.reconstruction / tokens,
            "note": "t = u in [0, 1]; the buckets plus reconstruction sum to the given-length "
            "nats_per_token",
        }


def add_discrete(terms: Terms, values: torch.Tensor, times: torch.Tensor) -> None:
    """A discrete bound's terms (``diffusion.discrete_terms``): values (B, T/S) at times
    (T/S,) u_t; the t = 0 term is the reconstruction."""
    for j, u_t in enumerate(times.tolist()):
        if u_t <= 0.0:
            terms.reconstruction += values[:, j].sum().item()
        else:
            terms.add(torch.full((len(values),), u_t, device=values.device), values[:, j], 1.0)


def add_continuous(
    terms: Terms, draws: ContinuousDraws, diffusion: AbsorbingDiffusion, x0: torch.Tensor,
    target_mask: torch.Tensor, eps: float = CONTINUOUS_EPS,
) -> None:  # fmt: skip
    """A continuous estimate's parts (``diffusion.ContinuousDraws``): each draw's share in the
    bucket of its own time, the reconstruction, and a control variate's profile (its bound
    of fixed per-token NLLs, spread over the buckets where it lies)."""
    k = draws.values.shape[1]
    for j in range(k):
        terms.add(eps + (1.0 - eps) * draws.times[:, j], draws.integral[:, j], 1.0 / k)
    terms.reconstruction += (draws.reconstruction + draws.reconstruction_share).sum().item()
    if draws.profile is not None:
        add_profile(terms, diffusion, x0, target_mask, draws.profile, eps)


def add_profile(
    terms: Terms, diffusion: AbsorbingDiffusion, x0: torch.Tensor, target_mask: torch.Tensor,
    values: torch.Tensor, eps: float,
) -> None:  # fmt: skip
    """The bound of fixed per-token NLLs ``values`` (B, L) where it lies: Σ_i v_i (ᾱ_i(a) −
    ᾱ_i(b)) for a bucket [a, b] of u ≥ eps, Σ_i v_i (1 − ᾱ_i(eps)) for the reconstruction."""
    edges = terms.edges.to(x0.device).clamp_min(eps).unsqueeze(-1)
    w = diffusion.centred(x0, target_mask)
    keep = diffusion.alpha_bar(edges, w, discrete=False).expand(len(edges), *x0.shape)
    per_bucket = ((keep[:-1] - keep[1:]) * values).sum((-1, -2))
    terms.add_profile(per_bucket, ((1.0 - keep[0]) * values).sum().item())


def sequence_nelbo(
    diffusion: AbsorbingDiffusion,
    denoiser: Denoiser,
    x0: torch.Tensor,
    target_mask: torch.Tensor,
    bound: str,
    step_size: int = 1,
    mc_samples: int = 1,
    generator: torch.Generator | None = None,
    noise: BatchNoise | KeyedNoise | None = None,
    estimator: str = "plain",
    proposal: TimeProposal | None = None,
    terms: Terms | None = None,
) -> torch.Tensor:
    """NELBO estimates in nats per sequence, (B, K) float64 (K = 1 for ``discrete``).

    Args: x0 (B, L) ids, target_mask (B, L) bool. Conditional on the number of target tokens.
    ``noise`` supplies the uniforms (default: ``generator`` in call order); ``estimator`` and
    ``proposal`` pick the continuous bound's estimator (``diffusion.estimators``). With
    ``terms``, where in t the estimate lies is added to it, from the parts the bound returns.
    """
    if bound == "discrete":
        values, times = discrete_terms(
            diffusion, denoiser, x0, target_mask, step_size, generator, noise
        )
        if terms is not None:
            add_discrete(terms, values, times)
        return values.sum(-1, keepdim=True)
    if bound == "continuous":
        draws = continuous_draws(
            diffusion, denoiser, x0, target_mask, mc_samples, generator, noise=noise,
            estimator=estimator, proposal=proposal,
        )  # fmt: skip
        if terms is not None:
            add_continuous(terms, draws, diffusion, x0, target_mask)
        return draws.values + draws.reconstruction[:, None]
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
    terms: Terms | None = None,
    keys: Sequence[int] | None = None,
    estimator: str = "plain",
    proposal: TimeProposal | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sequence NELBO draws (N, K) float64 and target-token counts (N,), on the CPU.

    ``batches`` yields (x0 (B, L), target_mask (B, L)); deterministic for a seed. With
    ``keys`` (one integer per sequence, in order) each sequence's noise comes from its own key
    (``diffusion.KeyedNoise``: the same whatever the batching), else from one generator seeded
    by ``seed``. With ``progress`` a bar counts network calls (``total`` batches known: with an
    ETA); with ``terms`` each call's term of the bound is added to it (``Terms``).
    """
    generator = torch.Generator(device=device).manual_seed(seed)
    values, tokens = [], []
    per_batch = calls_per_batch(bound, diffusion.num_steps, step_size, mc_samples, estimator)
    bar = progress_bar(
        total * per_batch if total is not None else None, "bound", "call", enabled=progress
    )
    counted = CallCounter(denoiser, bar)
    done = 0
    with bar:
        for x0_cpu, mask_cpu in batches:
            x0, target_mask = x0_cpu.to(device), mask_cpu.to(device)
            noise = None
            if keys is not None:
                batch_keys = keys[done : done + len(x0)]
                noise = KeyedNoise(batch_keys, mask_cpu, per_batch, device)
            nelbo = sequence_nelbo(
                diffusion, counted, x0, target_mask, bound, step_size, mc_samples, generator,
                noise, estimator, proposal, terms,
            )  # fmt: skip
            done += len(x0)
            values.append(nelbo.cpu())
            tokens.append(target_mask.sum(-1).cpu())
            bar.set_postfix(sequences=done, refresh=False)
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
    """Figures for a set: NLL per token and per word (± the ratio estimator's standard error
    over sequences, ``evaluation.stats.ratio_se``), bits per token, perplexity per token and
    per word, mean NLL per sequence.

    Args: values (N, K) bound draws; tokens, words (N,); extra_nll (N,) added per sequence
    (−log p(length) for the full-sequence bound).
    """
    per_sequence = values.to(torch.float64).mean(-1)
    if extra_nll is not None:
        per_sequence = per_sequence + extra_nll
    n = len(per_sequence)
    num_tokens = tokens.sum().item()
    nats = per_sequence.sum().item() / num_tokens
    se = ratio_se(per_sequence.tolist(), tokens.tolist())
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
        if out["num_words"] > 0:
            out["nats_per_word"] = per_sequence.sum().item() / out["num_words"]
            out["nats_per_word_se"] = ratio_se(per_sequence.tolist(), words.tolist())
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
