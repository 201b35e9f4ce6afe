"""Slow, obviously-correct D3PM reference on a tiny vocabulary: explicit V × V matrices.

Only tests import this. The last vocabulary id is [M].
"""

from __future__ import annotations

import math

import torch

V = 7
MASK = V - 1
CAP = {"exact": 1.0, "official": 0.999}  # the keep cap of discrete-time ᾱ^i per protocol


def betas(name: str, T: int, beta_min: float = 1e-4, beta_max: float = 0.02) -> list[float]:
    """The base schedule's Markov rates β_t, t = 0..T−1, as the reference code defines them."""
    if name == "mutual":
        return [1.0 / (T - t) for t in range(T)]
    if name == "linear":
        out = torch.linspace(beta_min, beta_max, T, dtype=torch.float64).tolist()
        out[-1] = 1.0
        return out
    c = 0.008

    def f(u: float) -> float:
        return math.cos((u + c) / (1 + c) * math.pi / 2)

    return [1.0 - f((t + 1) / T) / f(t / T) if t < T - 1 else 1.0 for t in range(T)]


def absorbing_step(beta: float) -> torch.Tensor:
    """One-step transition matrix Q[x, y] = q(x_{t+1} = y | x_t = x)."""
    q = torch.zeros(V, V, dtype=torch.float64)
    for x in range(V):
        q[x, x] = 1.0 - beta
        q[x, MASK] += beta
    q[MASK] = 0.0
    q[MASK, MASK] = 1.0
    return q


def base_marginal(name: str, T: int, t: int) -> torch.Tensor:
    """Q̄_t = Q_0 Q_1 … Q_{t−1} as a dense product."""
    out = torch.eye(V, dtype=torch.float64)
    for beta in betas(name, T)[:t]:
        out = out @ absorbing_step(beta)
    return out


def spindle_keep(base: float, lam: float, t: int, T: int, w: float, cap: float = 1.0) -> float:
    """The spindle formula written out by hand, for one token (cap 0.999: the reference's)."""
    if t == 0:
        return 1.0
    if lam == 0:
        return base
    return min(max(base + lam * math.sin(math.pi * t / T) * w, 0.0), cap)


def marginal_from_keep(keep: float) -> torch.Tensor:
    """q(x_t | x0) for a token kept with probability ``keep``: dense V × V."""
    return absorbing_step(1.0 - keep)


def transition_between(keep_t: float, keep_s: float) -> torch.Tensor:
    """q(x_s | x_t) for t < s of a per-token absorbing chain with marginals keep_t, keep_s."""
    return absorbing_step(1.0 - keep_s / keep_t)


def posterior(x0: int, xs: int, keep_t: float, keep_s: float, base_t=None, base_s=None):
    """q(x_t | x_s, x0) ∝ q(x_s | x_t) q(x_t | x0), as a (V,) vector, by Bayes on dense matrices.

    With base_t/base_s given, the transition t → s is the base schedule's (reference "official").
    """
    step = (
        transition_between(base_t, base_s)
        if base_t is not None
        else transition_between(keep_t, keep_s)
    )
    joint = step[:, xs] * marginal_from_keep(keep_t)[x0]
    return joint / joint.sum()


def kl(q: torch.Tensor, p: torch.Tensor) -> float:
    mask = q > 0
    return float((q[mask] * (q[mask].log() - p[mask].log())).sum())
