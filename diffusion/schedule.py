"""Noise schedules of absorbing-state diffusion: the base ᾱ and DiffusionBERT's spindle.

Time is continuous, ``u = t / T`` in [0, 1]; the discrete step ``t`` of a process with ``T``
steps is ``u = t / T``. ``alpha_bar`` is the probability that a token is still unmasked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

BASE_SCHEDULES = ("mutual", "linear", "cosine")
CONTINUOUS_SCHEDULES = ("mutual", "cosine")
COSINE_OFFSET = 0.008


@dataclass(frozen=True)
class NoiseSchedule:
    """ᾱ_t^i = clip(ᾱ_t + λ sin(π t/T) w_i, 0, keep_cap) for t ≥ 1 and ᾱ_0^i = 1.

    ``w_i`` is the centred token information of ``diffusion.spindle``; with ``word_freq_lambda``
    = 0 (or ``w`` omitted) this is the base schedule alone. ``keep_cap`` (the reference code's
    0.999) applies in discrete time with the spindle on; continuous time never caps.
    """

    name: str = "mutual"
    num_steps: int = 2048
    word_freq_lambda: float = 0.0
    beta_min: float = 1e-4
    beta_max: float = 0.02
    keep_cap: float = 0.999
    allow_nonmonotone: bool = False

    def __post_init__(self) -> None:
        if self.name not in BASE_SCHEDULES:
            raise ValueError(
                f"schedule {self.name!r} is unknown: choose one of {', '.join(BASE_SCHEDULES)}"
            )
        if self.num_steps < 1:
            raise ValueError(f"num_steps must be a positive integer, got {self.num_steps}")
        if self.word_freq_lambda < 0:
            raise ValueError(f"word_freq_lambda must be >= 0, got {self.word_freq_lambda}")
        if not self.allow_nonmonotone:
            self._check_monotone()

    @property
    def spindle(self) -> bool:
        return self.word_freq_lambda > 0

    def _base_table(self) -> torch.Tensor:
        """Linear schedule: ᾱ_t = Π_{s<t} (1 − β_s) for t = 0..T, ᾱ_T = 0. Shape (T+1,)."""
        betas = torch.linspace(self.beta_min, self.beta_max, self.num_steps, dtype=torch.float64)
        table = torch.cat([torch.zeros(1, dtype=torch.float64), torch.log1p(-betas).cumsum(0)])
        table = table.exp()
        table[-1] = 0.0
        return table

    def amplitude(self, u: torch.Tensor) -> torch.Tensor:
        """The spindle's λ sin(πu) (any shape, float64), exactly 0 at u = 0 and u = 1."""
        u = u.to(torch.float64)
        return self.word_freq_lambda * torch.sin(math.pi * torch.minimum(u, 1.0 - u))

    def base_alpha_bar(self, u: torch.Tensor) -> torch.Tensor:
        """Base ᾱ at times ``u`` (any shape, values in [0, 1]); same shape, float64."""
        u = u.to(torch.float64)
        if self.name == "mutual":
            return (1.0 - u).clamp(0.0, 1.0)
        if self.name == "cosine":
            c = COSINE_OFFSET
            a = torch.cos((u + c) / (1 + c) * math.pi / 2) / math.cos(c / (1 + c) * math.pi / 2)
            return torch.where(u >= 1, torch.zeros_like(a), a.clamp(0.0, 1.0))
        index = torch.round(u * self.num_steps).long()
        return self._base_table().to(u.device)[index]

    def base_alpha_bar_derivative(self, u: torch.Tensor) -> torch.Tensor:
        """dᾱ/du of the base schedule (continuous time only); same shape as ``u``, float64."""
        u = u.to(torch.float64)
        if self.name == "mutual":
            return -torch.ones_like(u)
        if self.name == "cosine":
            c = COSINE_OFFSET
            scale = math.pi / 2 / (1 + c) / math.cos(c / (1 + c) * math.pi / 2)
            return -scale * torch.sin((u + c) / (1 + c) * math.pi / 2)
        raise ValueError(
            f"schedule {self.name!r} has no continuous-time form: the continuous objective and "
            f"bound need one of {', '.join(CONTINUOUS_SCHEDULES)} (or use --objective d3pm / "
            "--bound discrete)"
        )

    def alpha_bar(
        self,
        u: torch.Tensor,
        w: torch.Tensor | None = None,
        discrete: bool = True,
        dtype: torch.dtype = torch.float64,
    ) -> torch.Tensor:
        """Per-token keep probability.

        Args:
            u: times, shape (B,) (or any shape that broadcasts against ``w`` after unsqueeze(-1)).
            w: centred token information, shape (B, L) (or (..., V) for candidate tokens).
            discrete: apply the reference ``keep_cap`` (discrete time, spindle on).
            dtype: of the per-token result (the per-row terms are always float64 first).
        Returns:
            float64 tensor of shape (B, 1) without spindle, else ``dtype`` of the shape of ``w``.
        """
        u = u.to(torch.float64).unsqueeze(-1)
        base = self.base_alpha_bar(u)
        if not self.spindle or w is None:
            return base
        amplitude = self.amplitude(u).to(dtype)
        a = base.to(dtype) + amplitude * w.to(dtype)
        a = a.clamp(0.0, self.keep_cap if discrete else 1.0)
        return torch.where(u <= 0, torch.ones_like(a), a)

    def alpha_bar_derivative(self, u: torch.Tensor, w: torch.Tensor | None = None) -> torch.Tensor:
        """dᾱ^i/du in continuous time (0 where ᾱ is clipped to 0 or 1); shapes as ``alpha_bar``."""
        u = u.to(torch.float64).unsqueeze(-1)
        d = self.base_alpha_bar_derivative(u)
        if not self.spindle or w is None:
            return d
        d = d + self.word_freq_lambda * math.pi * torch.cos(math.pi * u) * w.to(torch.float64)
        a = self.alpha_bar(u.squeeze(-1), w, discrete=False)
        return torch.where((a <= 0) | (a >= 1), torch.zeros_like(d), d)

    def loss_weight(self, u: torch.Tensor, w: torch.Tensor | None = None) -> torch.Tensor:
        """MDLM weight −ᾱ'(u) / (1 − ᾱ(u)); shapes as ``alpha_bar``."""
        a = self.alpha_bar(u, w, discrete=False)
        return -self.alpha_bar_derivative(u, w) / (1.0 - a).clamp_min(1e-12)

    def _check_monotone(self) -> None:
        """The uncapped spindle ᾱ^i must not increase in t for any w ∈ [−1, 1].

        (The 0.999 cap would hide an increase.)
        """
        if not self.spindle:
            return
        steps = self.num_steps if self.name == "linear" else max(self.num_steps, 4096)
        u = torch.arange(steps + 1, dtype=torch.float64) / steps
        w = torch.tensor([-1.0, 1.0], dtype=torch.float64)
        a = (
            self.base_alpha_bar(u)[:, None]
            + self.word_freq_lambda * torch.sin(math.pi * u)[:, None] * w
        )
        if (a[1:] - a[:-1] > 1e-12).any():
            bound = " (for 'mutual' the limit is 1/π ≈ 0.3183)" if self.name == "mutual" else ""
            raise ValueError(
                f"word_freq_lambda={self.word_freq_lambda} makes ᾱ_t increase in t for the "
                f"{self.name!r} schedule, so the forward process would un-mask tokens; use a "
                f"smaller --word_freq_lambda{bound} or pass --allow_nonmonotone_lambda to force it"
            )
