"""Base noise schedules ᾱ(u) of absorbing diffusion, without the spindle.

Time is continuous, ``u = t / T`` in [0, 1]. ``BASE_SCHEDULES`` maps each name to its class;
``make_base_schedule`` builds one from a name.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import torch

from diffusion.errors import ParameterError


@dataclass(frozen=True)
class BaseSchedule(ABC):
    """ᾱ(u), the probability that a token is still unmasked at time u; ᾱ(0) = 1, ᾱ(1) = 0.

    ``continuous`` says whether ᾱ has a continuous-time form (and so ``derivative``); the
    continuous objective and bound need one. ``lambda_limit`` is a hint on the largest spindle
    λ that keeps ᾱ^i monotone, for error messages ("" when there is no simple one).
    """

    num_steps: int

    name: ClassVar[str]
    continuous: ClassVar[bool] = True
    lambda_limit: ClassVar[str] = ""

    @classmethod
    def from_settings(cls, num_steps: int, beta_min: float, beta_max: float) -> BaseSchedule:
        """Build from the settings every schedule is given (most ignore the β range)."""
        return cls(num_steps)

    @abstractmethod
    def alpha_bar(self, u: torch.Tensor) -> torch.Tensor:
        """ᾱ at float64 times ``u`` (any shape, values in [0, 1]); same shape, float64."""

    def derivative(self, u: torch.Tensor) -> torch.Tensor:
        """dᾱ/du at float64 times ``u`` (any shape); same shape, float64."""
        raise NotImplementedError(f"the {self.name!r} schedule has no continuous-time form")


@dataclass(frozen=True)
class MutualSchedule(BaseSchedule):
    """D3PM's mutual-information schedule for absorbing noise: β_t = 1/(T − t), ᾱ = 1 − u."""

    name: ClassVar[str] = "mutual"
    lambda_limit: ClassVar[str] = " (for 'mutual' the limit is 1/π ≈ 0.3183)"

    def alpha_bar(self, u: torch.Tensor) -> torch.Tensor:
        return (1.0 - u).clamp(0.0, 1.0)

    def derivative(self, u: torch.Tensor) -> torch.Tensor:
        return -torch.ones_like(u)


@dataclass(frozen=True)
class CosineSchedule(BaseSchedule):
    """Nichol & Dhariwal: ᾱ = cos((u + c)/(1 + c) · π/2) / cos(c/(1 + c) · π/2), ᾱ(1) = 0."""

    offset: float = 0.008

    name: ClassVar[str] = "cosine"

    def alpha_bar(self, u: torch.Tensor) -> torch.Tensor:
        c = self.offset
        a = torch.cos((u + c) / (1 + c) * math.pi / 2) / math.cos(c / (1 + c) * math.pi / 2)
        return torch.where(u >= 1, torch.zeros_like(a), a.clamp(0.0, 1.0))

    def derivative(self, u: torch.Tensor) -> torch.Tensor:
        c = self.offset
        scale = math.pi / 2 / (1 + c) / math.cos(c / (1 + c) * math.pi / 2)
        return -scale * torch.sin((u + c) / (1 + c) * math.pi / 2)


@dataclass(frozen=True)
class LinearSchedule(BaseSchedule):
    """β linear from β_min to β_max over the T steps: ᾱ_t = Π_{s<t} (1 − β_s), ᾱ_T = 0.

    Defined on the grid u = t / T only: no continuous-time form.
    """

    beta_min: float = 1e-4
    beta_max: float = 0.02

    name: ClassVar[str] = "linear"
    continuous: ClassVar[bool] = False

    @classmethod
    def from_settings(cls, num_steps: int, beta_min: float, beta_max: float) -> BaseSchedule:
        return cls(num_steps, beta_min, beta_max)

    def table(self) -> torch.Tensor:
        """ᾱ_t for t = 0..T, shape (T+1,), float64."""
        betas = torch.linspace(self.beta_min, self.beta_max, self.num_steps, dtype=torch.float64)
        table = torch.cat([torch.zeros(1, dtype=torch.float64), torch.log1p(-betas).cumsum(0)])
        table = table.exp()
        table[-1] = 0.0
        return table

    def alpha_bar(self, u: torch.Tensor) -> torch.Tensor:
        index = torch.round(u * self.num_steps).long()
        return self.table().to(u.device)[index]


BASE_SCHEDULES: dict[str, type[BaseSchedule]] = {
    cls.name: cls for cls in (MutualSchedule, LinearSchedule, CosineSchedule)
}


def make_base_schedule(
    name: str, num_steps: int, beta_min: float = 1e-4, beta_max: float = 0.02
) -> BaseSchedule:
    """The base schedule called ``name``; ParameterError("schedule") for an unknown name."""
    if name not in BASE_SCHEDULES:
        raise ParameterError(
            "schedule", f"schedule {name!r} is unknown: choose one of {', '.join(BASE_SCHEDULES)}"
        )
    return BASE_SCHEDULES[name].from_settings(num_steps, beta_min, beta_max)
