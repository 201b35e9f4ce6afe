"""Likelihood bounds: the discrete-time NELBO and the continuous-time (MDLM) Monte Carlo bound.

Both are conditional on the number of target tokens (the network never chooses the length).
Both are valid upper bounds on the NLL unless ``AbsorbingDiffusion.valid_bound`` is False
(the official protocol with the spindle on). The continuous bound needs a schedule with a
continuous-time form (``NoiseSchedule.require_continuous``).
"""

from __future__ import annotations

import torch

from diffusion.bound_batch import BoundBatch, ContinuousDraws, NoiseSource
from diffusion.draws import TimeProposal
from diffusion.errors import check_step_size
from diffusion.estimators import make_estimator
from diffusion.kl import masked_kl
from diffusion.noise import BatchNoise
from diffusion.process import AbsorbingDiffusion
from diffusion.types import Denoiser


def discrete_terms(
    diffusion: AbsorbingDiffusion,
    denoiser: Denoiser,
    x0: torch.Tensor,
    target_mask: torch.Tensor,
    step_size: int = 1,
    generator: torch.Generator | None = None,
    noise: NoiseSource | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The T/S terms of the discrete NELBO per sequence, (B, T/S) float64 nats, and the time
    u_t = t / T of each (T/S,): KL(q(x_t | x_{t+S}, x0) ‖ p_θ(x_t | x_{t+S})) at t = T − S, …,
    S, then the reconstruction −log p_θ(x0 | x_S) at t = 0. One network call per term; call k
    masks with ``noise.mask(k)`` (default: uniforms from ``generator`` in call order)."""
    T = diffusion.num_steps
    check_step_size(T, step_size)
    batch = x0.shape[0]
    noise = noise or BatchNoise(batch, x0.shape[1], generator, x0.device)
    times = list(range(T - step_size, -1, -step_size))
    terms = torch.zeros(batch, len(times), dtype=torch.float64, device=x0.device)
    for call, t in enumerate(times):
        u_t = torch.full((batch,), t / T, dtype=torch.float64, device=x0.device)
        u_s = torch.full((batch,), (t + step_size) / T, dtype=torch.float64, device=x0.device)
        xs, masked = diffusion.q_sample(x0, target_mask, u_s, draw=noise.mask(call))
        log_probs = denoiser(xs, u_s, masked)
        kl, _ = masked_kl(diffusion, u_t, u_s, x0, xs, target_mask, masked, log_probs)
        terms[:, call].index_add_(0, masked.nonzero(as_tuple=True)[0], kl.to(torch.float64))
    return terms, torch.tensor(times, dtype=torch.float64, device=x0.device) / T


def discrete_nelbo(
    diffusion: AbsorbingDiffusion,
    denoiser: Denoiser,
    x0: torch.Tensor,
    target_mask: torch.Tensor,
    step_size: int = 1,
    generator: torch.Generator | None = None,
    noise: NoiseSource | None = None,
) -> torch.Tensor:
    """Unbiased estimate of the T/S-term NELBO per sequence, in nats. Shape (B,), float64:
    the sum of ``discrete_terms`` (the prior term is 0 because ᾱ_T = 0)."""
    terms, _ = discrete_terms(diffusion, denoiser, x0, target_mask, step_size, generator, noise)
    return terms.sum(-1)


def continuous_nelbo(
    diffusion: AbsorbingDiffusion,
    denoiser: Denoiser,
    x0: torch.Tensor,
    target_mask: torch.Tensor,
    mc_samples: int = 1,
    generator: torch.Generator | None = None,
    **options,
) -> torch.Tensor:
    """Continuous-time NELBO estimates per sequence, (B, K) float64, K = ``mc_samples``.

    ∫_eps^1 of the path-KL rate by K stratified draws of u per sequence, plus the exact
    discrete reconstruction step from u = eps to 0 (−log p_θ(x0 | x_eps) at the positions
    masked at eps), which keeps the estimate an unbiased upper bound without the 1/u variance.
    Each column is an unbiased estimate. ``options`` are ``continuous_draws``'s: ``eps``
    (1e-3), ``noise``, ``estimator`` (``diffusion.estimators``) and ``proposal``. One network
    call per draw, plus one for the reconstruction (none for ``rao_blackwell`` and
    ``rao_blackwell_loo``, whose draws carry it: ``time_given_mask``; for ``rao_blackwell_cv``
    the one is ``context_free``'s).
    """
    draws = continuous_draws(diffusion, denoiser, x0, target_mask, mc_samples, generator, **options)
    return draws.values + draws.reconstruction[:, None]


def continuous_draws(
    diffusion: AbsorbingDiffusion,
    denoiser: Denoiser,
    x0: torch.Tensor,
    target_mask: torch.Tensor,
    mc_samples: int = 1,
    generator: torch.Generator | None = None,
    eps: float = 1e-3,
    noise: NoiseSource | None = None,
    estimator: str = "plain",
    proposal: TimeProposal | None = None,
) -> ContinuousDraws:
    """``continuous_nelbo``'s parts (``ContinuousDraws``, all float64), from the estimator
    called ``estimator`` (``diffusion.estimators``; ``proposal``: the time density of
    ``importance``, default uniform). Call k uses ``noise``'s uniforms for k (default:
    ``generator`` in call order)."""
    noise = noise or BatchNoise(x0.shape[0], x0.shape[1], generator, x0.device)
    batch = BoundBatch(diffusion, denoiser, x0, target_mask, mc_samples, eps, noise)
    return make_estimator(estimator, proposal).estimate(batch)
