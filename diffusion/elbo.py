"""Likelihood bounds: the discrete-time NELBO and the continuous-time (MDLM) Monte Carlo bound.

Both are conditional on the number of target tokens (the network never chooses the length).
Both are valid upper bounds on the NLL unless ``AbsorbingDiffusion.valid_bound`` is False
(the official protocol with the spindle on). The continuous bound needs a schedule with a
continuous-time form (``NoiseSchedule.require_continuous``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from diffusion.errors import ParameterError, check_step_size
from diffusion.estimators import (
    CONDITIONED,
    RAO_BLACKWELL,
    TimeProposal,
    check_estimator,
    conditioned_mask,
    stratified,
    time_quadrature,
)
from diffusion.kl import masked_kl
from diffusion.noise import BatchNoise, KeyedNoise
from diffusion.process import AbsorbingDiffusion
from diffusion.types import Denoiser

NoiseSource = BatchNoise | KeyedNoise


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


def continuous_integrand(
    diffusion: AbsorbingDiffusion,
    u: torch.Tensor,
    x0: torch.Tensor,
    xt: torch.Tensor,
    target_mask: torch.Tensor,
    masked: torch.Tensor,
    log_probs: torch.Tensor,
) -> torch.Tensor:
    """Per masked position, the rate of the path-space KL at time u, (N,).

    With true reveal rate ρ = −ᾱ'/(1 − ᾱ) of x0 and model rates p_θ(v) ρ̂(v):
    Σ_v p_θ(v) ρ̂(v) − ρ + ρ log(ρ / (p_θ(x0) ρ̂(x0))). Without candidate-dependent rates (no
    spindle, or the official protocol, which uses the true token's rate for every candidate)
    this is −ρ log p_θ(x0).
    """
    target = x0[masked]
    log_p_x0 = log_probs.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    rho = diffusion.schedule.loss_weight(u, diffusion.centred(x0, target_mask))
    rho = rho.expand_as(x0)[masked].to(log_probs.dtype)
    if not diffusion.candidate_rates:
        return -rho * log_p_x0
    probs = log_probs.exp()
    rows = masked.nonzero(as_tuple=True)[0]
    w = diffusion.candidate_information(xt, target_mask, masked, probs)
    rho_hat = diffusion.schedule.loss_weight(u[rows], w).to(log_probs.dtype)
    rho_hat_x0 = rho_hat.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    log_ratio = torch.log(rho.clamp_min(1e-300)) - torch.log(rho_hat_x0.clamp_min(1e-300))
    return (probs * rho_hat).sum(-1) - rho + rho * (log_ratio - log_p_x0)


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


@dataclass
class ContinuousDraws:
    """What one continuous-bound estimate is made of. ``values`` (B, K): each draw's estimate
    of the bound without the reconstruction call; ``times`` (B, K): its v = (u − eps) /
    (1 − eps); ``reconstruction`` (B,): the reconstruction call's term (0 when the draws
    carry it). Where in t the bound lies: ``integral`` (B, K), each draw's share at its own
    time; ``reconstruction_share`` (B,), the draws' mean share at u = eps; ``profile`` (B, L)
    or None, fixed per-token NLLs (a control variate's) whose bound, Σ_i profile_i (1 −
    ᾱ_i(1)), is in every draw's value. So values.mean(1) = integral.mean(1) +
    reconstruction_share + that bound."""

    values: torch.Tensor
    times: torch.Tensor
    reconstruction: torch.Tensor
    integral: torch.Tensor
    reconstruction_share: torch.Tensor
    profile: torch.Tensor | None = None


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
    """``continuous_nelbo``'s parts (``ContinuousDraws``, all float64). For ``rao_blackwell``
    each draw carries its own unbiased share of the reconstruction and the reconstruction
    term is 0 (no reconstruction call); ``rao_blackwell_cv``'s draws also carry the control
    variate's expectation (``context_free``, its call made first: its NLLs are the
    ``profile``), and ``rao_blackwell_loo``'s their leave-one-out control variate
    (``leave_one_out_control``; the profile is the draws' mean v^(−k)).

    ``estimator`` picks how the times and masks are drawn (``diffusion.estimators``),
    ``proposal`` the time density of ``importance`` (default uniform); call k uses ``noise``'s
    uniforms for k (default: ``generator`` in call order).
    """
    diffusion.schedule.require_continuous()
    check_estimator(estimator)
    batch = x0.shape[0]
    noise = noise or BatchNoise(batch, x0.shape[1], generator, x0.device)
    conditioned = estimator in CONDITIONED
    antithetic = estimator == "antithetic"
    rao_blackwell = estimator in RAO_BLACKWELL
    leave_one_out = estimator == "rao_blackwell_loo"
    if rao_blackwell and diffusion.candidate_rates:
        raise ParameterError(
            "estimator",
            f"estimator {estimator!r} needs reveal rates that do not depend on the candidate "
            "token: a schedule without the spindle, or the official protocol",
        )
    baseline_nll = torch.zeros(x0.shape, dtype=torch.float64, device=x0.device)
    baseline = torch.zeros(batch, dtype=torch.float64, device=x0.device)
    if estimator == "rao_blackwell_cv":
        baseline_nll, baseline = context_free(diffusion, denoiser, x0, target_mask)
    proposal = proposal if estimator == "importance" and proposal else TimeProposal.uniform()
    out = torch.zeros(batch, mc_samples, dtype=torch.float64, device=x0.device)
    times, integral, shares = torch.zeros_like(out), torch.zeros_like(out), torch.zeros_like(out)
    offsets = noise.offset()
    nlls, masks = [], []  # rao_blackwell_loo: every draw's NLLs and mask
    for k in range(mc_samples):
        if antithetic and k % 2:  # the mirror of draw k − 1: time 1 − v, uniforms 1 − U
            v = 1.0 - times[:, k - 1]
            draw = 1.0 - noise.mask(k - 1)
            xt, masked = diffusion.q_sample(x0, target_mask, eps + (1.0 - eps) * v,
                                            discrete=False, draw=draw)  # fmt: skip
            u, weight, p_any = eps + (1.0 - eps) * v, 1.0, torch.ones_like(v)
        else:
            if leave_one_out:  # independent times: the other draws say nothing of this one
                y = noise.time(k)
            elif antithetic:
                y = stratified(offsets, k // 2, (mc_samples + 1) // 2)
            else:
                y = stratified(offsets, k, mc_samples)
            v, weight = proposal.sample(y)
            u = eps + (1.0 - eps) * v
            xt, masked, p_any = _mask(diffusion, x0, target_mask, u, noise, k, conditioned)
        log_probs = denoiser(xt, u, masked)
        times[:, k] = v
        if rao_blackwell:
            nll = torch.zeros(x0.shape, dtype=torch.float64, device=x0.device)
            target = x0[masked].unsqueeze(-1)
            nll[masked] = -log_probs.gather(-1, target).squeeze(-1).to(torch.float64)
            nll = nll - baseline_nll * masked
            part, recon = time_given_mask(diffusion, x0, target_mask, masked, nll, eps)
            out[:, k] = (1.0 - eps) * part + recon + baseline
            integral[:, k], shares[:, k] = (1.0 - eps) * part, recon
            nlls.append(nll)
            masks.append(masked)
            continue
        rate = continuous_integrand(diffusion, u, x0, xt, target_mask, masked, log_probs)
        rows = masked.nonzero(as_tuple=True)[0]
        out[:, k].index_add_(0, rows, (1.0 - eps) * rate.to(torch.float64))
        out[:, k] *= weight * p_any
        integral[:, k] = out[:, k]
    zeros = torch.zeros(batch, dtype=torch.float64, device=x0.device)
    if leave_one_out:
        nll, masked = torch.stack(nlls), torch.stack(masks)
        part, recon, expected = leave_one_out_control(diffusion, x0, target_mask, nll, masked, eps)
        out -= (1.0 - eps) * part + recon - expected
        integral -= (1.0 - eps) * part
        shares -= recon
        profile = leave_one_out_values(nll, masked).mean(0)
        return ContinuousDraws(out, times, zeros, integral, shares.mean(1), profile)
    if rao_blackwell:
        profile = baseline_nll if estimator == "rao_blackwell_cv" else None
        return ContinuousDraws(out, times, zeros, integral, shares.mean(1), profile)
    u_eps = torch.full((batch,), eps, dtype=torch.float64, device=x0.device)
    xt, masked, p_any = _mask(diffusion, x0, target_mask, u_eps, noise, mc_samples, conditioned)
    log_probs = denoiser(xt, u_eps, masked)
    recon = -log_probs.gather(-1, x0[masked].unsqueeze(-1)).squeeze(-1).to(torch.float64)
    rows = masked.nonzero(as_tuple=True)[0]
    recon = torch.zeros(batch, dtype=torch.float64, device=x0.device).index_add(0, rows, recon)
    return ContinuousDraws(out, times, recon * p_any, integral, zeros)


def context_free(
    diffusion: AbsorbingDiffusion,
    denoiser: Denoiser,
    x0: torch.Tensor,
    target_mask: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``rao_blackwell_cv``'s control variate, from one network call with every target masked:
    g (B, L) float64, each target token's NLL then (0 elsewhere), and the bound of a network
    whose NLLs were g whatever the mask, Σ_i g_i (1 − ᾱ_i(1)) (B,) float64. (Each token's
    share is ∫_eps^1 ρ_i (1 − ᾱ_i) du = ᾱ_i(eps) − ᾱ_i(1) plus the reconstruction's
    1 − ᾱ_i(eps), since ρ_i = −ᾱ_i' / (1 − ᾱ_i).)"""
    ones = torch.ones(x0.shape[0], dtype=torch.float64, device=x0.device)
    log_probs = denoiser(x0.masked_fill(target_mask, diffusion.mask_id), ones, target_mask)
    return context_free_values(diffusion, x0, target_mask, log_probs)


def leave_one_out_values(nll: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """v^(−k) for every draw k, (K, B, L) float64: each token's mean NLL over the other draws
    that mask it, 0 where none does. Args: nll (K, B, L) float64 (0 where not masked), masked
    (K, B, L) bool."""
    total, count = (nll * masked).sum(0), masked.sum(0)
    others = count - masked.long()
    return torch.where(others > 0, (total - nll * masked) / others.clamp_min(1), 0.0)


def leave_one_out_control(
    diffusion: AbsorbingDiffusion,
    x0: torch.Tensor,
    target_mask: torch.Tensor,
    nll: torch.Tensor,
    masked: torch.Tensor,
    eps: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``rao_blackwell_loo``'s control variate of each draw, in three parts, each (B, K)
    float64: the ``time_given_mask`` integral and reconstruction shares of v^(−k)
    (``leave_one_out_values``) on draw k's mask, and their expectation Σ_i v^(−k)_i
    (1 − ᾱ_i(1)). Draw k's control variate, (1 − eps) · integral + reconstruction −
    expectation, has mean 0 when v^(−k) is independent of draw k's mask. Args: x0,
    target_mask (B, L); nll (K, B, L) float64; masked (K, B, L) bool."""
    values = leave_one_out_values(nll, masked)
    share = no_context_share(diffusion, x0, target_mask)
    parts = [
        time_given_mask(diffusion, x0, target_mask, masked[k], values[k], eps)
        for k in range(len(values))
    ]
    integral = torch.stack([part[0] for part in parts], -1)
    recon = torch.stack([part[1] for part in parts], -1)
    return integral, recon, (values * share).sum(-1).T


def no_context_share(
    diffusion: AbsorbingDiffusion, x0: torch.Tensor, target_mask: torch.Tensor
) -> torch.Tensor:
    """(B, L) float64: 1 − ᾱ_i(1) at the target tokens (0 elsewhere), the weight of a fixed
    per-token NLL in the continuous bound (``context_free``)."""
    ones = torch.ones(x0.shape[0], dtype=torch.float64, device=x0.device)
    keep = diffusion.alpha_bar(ones, diffusion.centred(x0, target_mask), discrete=False)
    return torch.where(target_mask, 1.0 - keep.expand(x0.shape).double(), 0.0)


def context_free_values(
    diffusion: AbsorbingDiffusion,
    x0: torch.Tensor,
    target_mask: torch.Tensor,
    log_probs: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``context_free``'s g (B, L) and expectation (B,) from its call's ``log_probs`` (N, V),
    N = the target tokens of x0 in row-major order."""
    g = torch.zeros(x0.shape, dtype=torch.float64, device=x0.device)
    g[target_mask] = -log_probs.gather(-1, x0[target_mask].unsqueeze(-1)).squeeze(-1).double()
    return g, (g * no_context_share(diffusion, x0, target_mask)).sum(-1)


def time_given_mask(
    diffusion: AbsorbingDiffusion,
    x0: torch.Tensor,
    target_mask: torch.Tensor,
    masked: torch.Tensor,
    nll: torch.Tensor,
    eps: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """For a mask M drawn conditioned on masking one target at a uniform time v, its unbiased
    shares of the bound's two parts, given M only.

    M's density is r(M) = ∫ P(M | v) / P(any | v) dv, u = eps + (1 − eps) v. The integral's
    share is E[f(v, M) | M] = ∫ P(M | v) f(v, M) dv / r(M), f(v, M) = Σ_{i∈M} ρ_i(u) nll_i
    (the caller multiplies it by 1 − eps). The reconstruction's, E_{q(M' | eps)}[Σ_{i∈M'}
    nll_i(M')] by importance, is P(M | eps) Σ_{i∈M} nll_i / r(M): the network sees M alone,
    so the draw's own output serves and no call at u = eps is needed. Integrals by
    ``time_quadrature``. Args: x0, target_mask, masked (B, L); nll (B, L) float64, the
    network's −log p_θ(x0_i | M) at the masked positions. Returns both (B,) float64 (0 where
    nothing is masked)."""
    v, weights = time_quadrature(x0.device)
    v = torch.cat([v, v.new_zeros(1)])  # the last row: u = eps, for the reconstruction
    u = (eps + (1.0 - eps) * v).unsqueeze(-1)  # (J + 1, 1): broadcasts against (B, L)
    w = diffusion.centred(x0, target_mask)
    keep = diffusion.alpha_bar(u, w, discrete=False).expand(len(v), *x0.shape)
    rho = diffusion.schedule.loss_weight(u, w).expand_as(keep)
    kept = target_mask & ~masked
    log_keep = keep.clamp_min(1e-300).log()
    log_mask = (1.0 - keep).clamp_min(1e-300).log()
    log_p = (log_mask * masked).sum(-1) + torch.where(kept, log_keep, 0.0).sum(-1)  # (J+1, B)
    log_any = torch.log(-torch.expm1(torch.where(target_mask, log_keep, 0.0).sum(-1)))
    f = (rho * nll * masked).sum(-1)  # (J + 1, B)
    log_p, log_p_eps = log_p[:-1], log_p[-1]
    shift = log_p.max(0).values
    num = (weights[:, None] * (log_p - shift).exp() * f[:-1]).sum(0)
    den = (weights[:, None] * (log_p - log_any[:-1] - shift).exp()).sum(0)
    recon = (log_p_eps - shift).exp() * (nll * masked).sum(-1) / den
    any_masked = masked.any(-1)
    return torch.where(any_masked, num / den, 0.0), torch.where(any_masked, recon, 0.0)


def _mask(
    diffusion: AbsorbingDiffusion,
    x0: torch.Tensor,
    target_mask: torch.Tensor,
    u: torch.Tensor,
    noise: NoiseSource,
    call: int,
    conditioned: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x_u (B, L), masked (B, L) and the factor (B,) its score is multiplied by: 1 for a mask
    drawn from q(x_u | x0), P(at least one masked) for one conditioned on it."""
    if not conditioned:
        xt, masked = diffusion.q_sample(x0, target_mask, u, discrete=False, draw=noise.mask(call))
        return xt, masked, torch.ones_like(u)
    keep = diffusion.alpha_bar(u, diffusion.centred(x0, target_mask), discrete=False)
    masked, p_any = conditioned_mask(keep, target_mask, noise.pick(call), noise.mask(call))
    return x0.masked_fill(masked, diffusion.mask_id), masked, p_any
