"""The Rao–Blackwellised estimators' parts: a draw's score averaged over the time given its
mask (``time_given_mask``), and the control variates of ``rao_blackwell_cv`` (``context_free``)
and ``rao_blackwell_loo`` (``leave_one_out_control``). Valid where the network does not see
the time and the reveal rates do not depend on the candidate token.
"""

from __future__ import annotations

import torch

from diffusion.draws import time_quadrature
from diffusion.process import AbsorbingDiffusion
from diffusion.types import Denoiser


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
