"""Noise schedules of absorbing-state diffusion: a base ᾱ and DiffusionBERT's spindle.

Time is continuous, ``u = t / T`` in [0, 1]; the discrete step ``t`` of a process with ``T``
steps is ``u = t / T``. ``alpha_bar`` is the probability that a token is still unmasked.
The base schedules live in ``diffusion.base_schedules``; ``Spindle`` owns the token-dependent
term λ sin(πu) · w, and ``NoiseSchedule`` puts the two together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from diffusion.base_schedules import BaseSchedule, make_base_schedule
from diffusion.errors import ParameterError


@dataclass(frozen=True)
class Spindle:
    """The spindle's amplitude λ sin(πu), which multiplies the centred information w."""

    word_freq_lambda: float

    def amplitude(self, u: torch.Tensor) -> torch.Tensor:
        """λ sin(πu) (any shape, float64), exactly 0 at u = 0 and u = 1."""
        u = u.to(torch.float64)
        return self.word_freq_lambda * torch.sin(math.pi * torch.minimum(u, 1.0 - u))

    def amplitude_derivative(self, u: torch.Tensor) -> torch.Tensor:
        """d/du of the amplitude, λπ cos(πu) (any shape, float64)."""
        return self.word_freq_lambda * math.pi * torch.cos(math.pi * u.to(torch.float64))


@dataclass(frozen=True)
class NoiseSchedule:
    """ᾱ_t^i = clip(ᾱ_t + λ sin(π t/T) w_i, 0, cap) for t ≥ 1 and ᾱ_0^i = 1.

    ``w_i`` is the centred token information of ``diffusion.spindle``; with ``word_freq_lambda``
    = 0 (or ``w`` omitted) this is the base schedule alone. ``keep_cap`` is the reference code's
    0.999: only the ``official`` protocol applies it (``ReverseProtocol.keep_cap``), in discrete
    time with the spindle on; by default ``cap`` = 1, which never binds for a monotone λ (ᾱ^i
    then decreases strictly from ᾱ_0 = 1). ``base`` and ``spindle_term`` are built from the
    settings.
    """

    name: str = "mutual"
    num_steps: int = 2048
    word_freq_lambda: float = 0.0
    beta_min: float = 1e-4
    beta_max: float = 0.02
    keep_cap: float = 0.999
    allow_nonmonotone: bool = False
    base: BaseSchedule = field(init=False, repr=False, compare=False)
    spindle_term: Spindle = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        base = make_base_schedule(self.name, self.num_steps, self.beta_min, self.beta_max)
        object.__setattr__(self, "base", base)
        object.__setattr__(self, "spindle_term", Spindle(self.word_freq_lambda))
        if self.num_steps < 1:
            raise ParameterError(
                "num_steps", f"num_steps must be a positive integer, got {self.num_steps}"
            )
        if self.word_freq_lambda < 0:
            raise ParameterError(
                "word_freq_lambda", f"word_freq_lambda must be >= 0, got {self.word_freq_lambda}"
            )
        if not self.allow_nonmonotone:
            self._check_monotone()

    @property
    def spindle(self) -> bool:
        """Whether the spindle is on (λ > 0)."""
        return self.word_freq_lambda > 0

    @property
    def continuous(self) -> bool:
        """Whether the base schedule has a continuous-time form (needed by the continuous
        objective and bound)."""
        return self.base.continuous

    def require_continuous(self) -> None:
        """Raise ParameterError("schedule") unless the schedule has a continuous-time form."""
        if not self.continuous:
            raise ParameterError(
                "schedule",
                f"schedule {self.name!r} has no continuous-time form: the continuous objective "
                "and bound need a continuous schedule; use the discrete ones instead",
            )

    def amplitude(self, u: torch.Tensor) -> torch.Tensor:
        """The spindle's λ sin(πu) (any shape, float64), exactly 0 at u = 0 and u = 1."""
        return self.spindle_term.amplitude(u)

    def base_alpha_bar(self, u: torch.Tensor) -> torch.Tensor:
        """Base ᾱ at times ``u`` (any shape, values in [0, 1]); same shape, float64."""
        return self.base.alpha_bar(u.to(torch.float64))

    def base_alpha_bar_derivative(self, u: torch.Tensor) -> torch.Tensor:
        """dᾱ/du of the base schedule (continuous time only); same shape as ``u``, float64."""
        self.require_continuous()
        return self.base.derivative(u.to(torch.float64))

    def alpha_bar(
        self,
        u: torch.Tensor,
        w: torch.Tensor | None = None,
        *,
        cap: float = 1.0,
        dtype: torch.dtype = torch.float64,
    ) -> torch.Tensor:
        """Per-token keep probability.

        Args:
            u: times, shape (B,) (or any shape that broadcasts against ``w`` after unsqueeze(-1)).
            w: centred token information, shape (B, L) (or (..., V) for candidate tokens).
            cap: upper clip of ᾱ^i for u > 0 (the reference's ``keep_cap`` or 1: none).
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
        a = a.clamp(0.0, cap)
        return torch.where(u <= 0, torch.ones_like(a), a)

    def alpha_bar_from_mean(
        self,
        u: torch.Tensor,
        h: torch.Tensor,
        mean: torch.Tensor,
        cap: float = 1.0,
        inside: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``alpha_bar`` at w = h − mean without materialising w, in h's dtype.

        ᾱ = clip((base − amp · mean) + amp · h, 0, cap) (cap 1 at u = 0, so ᾱ_0 = 1).
        Args: u (N,); h (1, K) or (N, K); mean (N, 1). Returns (N, K) and, with ``inside``,
        where the clip does not bind (N, K) bool, else None.
        """
        dtype = h.dtype
        u = u.to(torch.float64).unsqueeze(-1)
        base = self.base_alpha_bar(u).to(dtype)
        amp = self.amplitude(u).to(dtype)
        cap = torch.full_like(u, cap).masked_fill(u <= 0, 1.0).to(dtype)
        raw = torch.addcmul(base - amp * mean, amp, h)
        within = ((raw >= 0) & (raw <= cap)) if inside else None
        return raw.clamp_(min=torch.zeros_like(cap), max=cap), within

    def alpha_bar_derivative(self, u: torch.Tensor, w: torch.Tensor | None = None) -> torch.Tensor:
        """dᾱ^i/du in continuous time (0 where ᾱ is clipped to 0 or 1); shapes as ``alpha_bar``."""
        u = u.to(torch.float64).unsqueeze(-1)
        d = self.base_alpha_bar_derivative(u)
        if not self.spindle or w is None:
            return d
        d = d + self.spindle_term.amplitude_derivative(u) * w.to(torch.float64)
        a = self.alpha_bar(u.squeeze(-1), w)
        return torch.where((a <= 0) | (a >= 1), torch.zeros_like(d), d)

    def loss_weight(self, u: torch.Tensor, w: torch.Tensor | None = None) -> torch.Tensor:
        """MDLM weight −ᾱ'(u) / (1 − ᾱ(u)); shapes as ``alpha_bar``."""
        a = self.alpha_bar(u, w)
        return -self.alpha_bar_derivative(u, w) / (1.0 - a).clamp_min(1e-12)

    def _check_monotone(self) -> None:
        """The uncapped spindle ᾱ^i must not increase in t for any w ∈ [−1, 1].

        (The 0.999 cap would hide an increase.) Checked on the T grid for a schedule without a
        continuous form, else on a grid of at least 4096 steps.
        """
        if not self.spindle:
            return
        steps = max(self.num_steps, 4096) if self.continuous else self.num_steps
        u = torch.arange(steps + 1, dtype=torch.float64) / steps
        w = torch.tensor([-1.0, 1.0], dtype=torch.float64)
        a = self.base_alpha_bar(u)[:, None] + self.amplitude(u)[:, None] * w
        if (a[1:] - a[:-1] > 1e-12).any():
            raise ParameterError(
                "word_freq_lambda",
                f"word_freq_lambda={self.word_freq_lambda} makes ᾱ_t increase in t for the "
                f"{self.name!r} schedule, so the forward process would un-mask tokens; use a "
                f"smaller word_freq_lambda{self.base.lambda_limit}, or pass "
                "allow_nonmonotone=True to force it",
            )
