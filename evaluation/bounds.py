"""Likelihood bounds over a whole set of sequences, in the units papers report.

Shared by compute_elbo.py and the dev evaluation of main.py.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch

from common.progress import progress as progress_bar
from diffusion import (
    AbsorbingDiffusion,
    BatchNoise,
    KeyedNoise,
    TimeProposal,
    continuous_nelbo,
    discrete_nelbo,
)
from diffusion.elbo import (
    context_free_values,
    continuous_integrand,
    leave_one_out_control,
    leave_one_out_values,
    time_given_mask,
)
from diffusion.estimators import CONDITIONED, RAO_BLACKWELL, network_calls
from diffusion.kl import masked_kl
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

    ``TermRecorder`` adds each network call's term; ``figures(tokens)`` divides by the
    number of target tokens, so the buckets and ``reconstruction`` add up to the
    given-length ``nats_per_token`` (the same draws, not new ones).
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


class TermRecorder:
    """A denoiser that passes every call through, counts it on a progress bar and, with
    ``terms``, records that call's term of the bound for the batch of ``x0``."""

    def __init__(self, diffusion, denoiser, bound, step_size, mc_samples, bar, terms=None):
        self.diffusion, self.denoiser, self.bound = diffusion, denoiser, bound
        self.step_size, self.mc_samples, self.bar, self.terms = step_size, mc_samples, bar, terms
        self.x0 = self.target_mask = self.context_free_nll = None
        self.call = 0
        self.loo_draws = []
        self.estimator, self.proposal = "plain", None

    def batch(self, x0: torch.Tensor, target_mask: torch.Tensor) -> None:
        self.x0, self.target_mask, self.call = x0, target_mask, 0
        self.loo_draws = []  # rao_blackwell_loo: (u, nll, masked) of each draw

    def __call__(self, xt: torch.Tensor, u: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        log_probs = self.denoiser(xt, u, masked)
        self.call += 1
        self.bar.update(1)
        if self.terms is not None:
            self._record(xt, u, masked, log_probs)
        return log_probs

    def _record(self, xt, u, masked, log_probs) -> None:
        diffusion, x0, target_mask = self.diffusion, self.x0, self.target_mask
        rows = masked.nonzero(as_tuple=True)[0]
        per_row = torch.zeros(x0.shape[0], dtype=torch.float64, device=x0.device)
        if self.bound == "discrete":
            T = diffusion.num_steps
            u_t = ((u * T).round() - self.step_size).clamp_min(0.0) / T
            kl, _ = masked_kl(diffusion, u_t, u, x0, xt, target_mask, masked, log_probs)
            per_row.index_add_(0, rows, kl.to(torch.float64))
            if u_t.max().item() <= 0.0:
                self.terms.reconstruction += per_row.sum().item()
            else:
                self.terms.add(u_t, per_row, 1.0)
        elif self.estimator == "rao_blackwell_cv" and self.call == 1:
            self._context_free(log_probs)
        elif self.estimator in RAO_BLACKWELL:
            nll = torch.zeros(x0.shape, dtype=torch.float64, device=x0.device)
            target = x0[masked].unsqueeze(-1)
            nll[masked] = -log_probs.gather(-1, target).squeeze(-1).double()
            if self.estimator == "rao_blackwell_cv":
                nll = nll - self.context_free_nll * masked
            per_row, recon = time_given_mask(
                diffusion, x0, target_mask, masked, nll, CONTINUOUS_EPS
            )
            self.terms.add(u, per_row, (1.0 - CONTINUOUS_EPS) / self.mc_samples)
            self.terms.reconstruction += recon.sum().item() / self.mc_samples
            if self.estimator == "rao_blackwell_loo":
                self.loo_draws.append((u, nll, masked))
                if self.call == self.mc_samples:
                    self._leave_one_out()
        elif self.call <= self.mc_samples:
            rate = continuous_integrand(diffusion, u, x0, xt, target_mask, masked, log_probs)
            per_row.index_add_(0, rows, rate.to(torch.float64))
            per_row *= self._factor(u)
            self.terms.add(u, per_row, (1.0 - CONTINUOUS_EPS) / self.mc_samples)
        else:
            target = x0[masked].unsqueeze(-1)
            nll = -log_probs.gather(-1, target).squeeze(-1).double()
            per_row.index_add_(0, rows, nll)
            self.terms.reconstruction += (per_row * self._factor(u)).sum().item()

    def _context_free(self, log_probs: torch.Tensor) -> None:
        """``rao_blackwell_cv``'s first call: keep g for the draws, and add the control
        variate's expectation (``_profile``)."""
        g, _ = context_free_values(self.diffusion, self.x0, self.target_mask, log_probs)
        self.context_free_nll = g
        self._profile(g)

    def _leave_one_out(self) -> None:
        """``rao_blackwell_loo``'s last draw of a batch: take each draw's control variate off
        its term (its integral share in its draw's bucket, its reconstruction share) and add
        their expectations (``_profile``)."""
        u, nll, masked = (torch.stack(part) for part in zip(*self.loo_draws, strict=True))
        integral, recon, _ = leave_one_out_control(
            self.diffusion, self.x0, self.target_mask, nll, masked, CONTINUOUS_EPS
        )
        for k in range(len(u)):
            self.terms.add(u[k], -integral[:, k], (1.0 - CONTINUOUS_EPS) / self.mc_samples)
        self.terms.reconstruction -= recon.sum().item() / self.mc_samples
        self._profile(leave_one_out_values(nll, masked).sum(0) / self.mc_samples)

    def _profile(self, values: torch.Tensor) -> None:
        """Add the bound of fixed per-token NLLs ``values`` (B, L) to the buckets where it
        lies: Σ_i v_i (ᾱ_i(a) − ᾱ_i(b)) for a bucket [a, b] of u ≥ eps, Σ_i v_i (1 −
        ᾱ_i(eps)) to the reconstruction (a control variate's expectation)."""
        diffusion, x0, target_mask = self.diffusion, self.x0, self.target_mask
        edges = self.terms.edges.to(x0.device).clamp_min(CONTINUOUS_EPS).unsqueeze(-1)
        w = diffusion.centred(x0, target_mask)
        keep = diffusion.alpha_bar(edges, w, discrete=False).expand(len(edges), *x0.shape)
        per_bucket = ((keep[:-1] - keep[1:]) * values).sum((-1, -2))
        self.terms.add_profile(per_bucket, ((1.0 - keep[0]) * values).sum().item())

    def _factor(self, u: torch.Tensor) -> torch.Tensor:
        """What the estimator multiplies a continuous draw at times u (B,) by: P(at least one
        target masked) for a conditioned mask, over the proposal's density for importance."""
        factor = torch.ones_like(u, dtype=torch.float64)
        if self.estimator in CONDITIONED:
            w = self.diffusion.centred(self.x0, self.target_mask)
            keep = self.diffusion.alpha_bar(u, w, discrete=False).expand(self.x0.shape)
            factor = 1.0 - torch.where(self.target_mask, keep, 1.0).prod(-1)
        if (
            self.estimator == "importance"
            and self.proposal is not None
            and self.call <= (self.mc_samples)
        ):
            v = (u.double() - CONTINUOUS_EPS) / (1.0 - CONTINUOUS_EPS)
            factor = factor / self.proposal.density_at(v.clamp(0.0, 1.0))
        return factor


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
) -> torch.Tensor:
    """NELBO estimates in nats per sequence, (B, K) float64 (K = 1 for ``discrete``).

    Args: x0 (B, L) ids, target_mask (B, L) bool. Conditional on the number of target tokens.
    ``noise`` supplies the uniforms (default: ``generator`` in call order); ``estimator`` and
    ``proposal`` pick the continuous bound's estimator (``diffusion.estimators``).
    """
    if bound == "discrete":
        return discrete_nelbo(
            diffusion, denoiser, x0, target_mask, step_size, generator, noise
        ).unsqueeze(-1)
    if bound == "continuous":
        return continuous_nelbo(
            diffusion, denoiser, x0, target_mask, mc_samples, generator, noise=noise,
            estimator=estimator, proposal=proposal,
        )  # fmt: skip
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
    recorder = TermRecorder(diffusion, denoiser, bound, step_size, mc_samples, bar, terms)
    recorder.estimator, recorder.proposal = estimator, proposal
    done = 0
    with bar:
        for x0_cpu, mask_cpu in batches:
            x0, target_mask = x0_cpu.to(device), mask_cpu.to(device)
            recorder.batch(x0, target_mask)
            noise = None
            if keys is not None:
                batch_keys = keys[done : done + len(x0)]
                noise = KeyedNoise(batch_keys, mask_cpu, per_batch, device)
            nelbo = sequence_nelbo(
                diffusion, recorder, x0, target_mask, bound, step_size, mc_samples, generator,
                noise, estimator, proposal,
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
