"""Reverse-model protocols: which posterior q(x_t | x_s, x0) the bound uses and what the
reverse model may look at. ``PROTOCOLS`` maps each name to its class.

- ``exact``: the true posterior of the per-token process; with the spindle the reverse model
  never sees x0 (candidate-dependent rates from h(v) and an estimated sequence mean). No keep
  cap: forward marginals, posterior and model rates all use the uncapped ᾱ^i, which for a
  monotone λ decreases strictly in t, so every candidate's reveal rate is > 0 and the model's
  support covers the posterior's at every step size (the KL is finite).
- ``official``: the reference code's posterior (per-token marginal times the base schedule's
  Markov transition) with the TRUE token's information plugged into the reverse model, and the
  reference's discrete-time keep cap (0.999). Not a valid likelihood bound with the spindle on.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import torch

from diffusion.errors import ParameterError
from diffusion.schedule import NoiseSchedule


@dataclass(frozen=True)
class ReverseProtocol(ABC):
    """A reverse-model protocol. ``uses_true_token``: the model's reveal rate is the true
    token's (it leaks x0), so it does not depend on the candidate. ``capped``: discrete-time
    ᾱ^i is clipped at the schedule's ``keep_cap`` (the reference's 0.999)."""

    name: ClassVar[str]
    uses_true_token: ClassVar[bool]
    capped: ClassVar[bool]

    def keep_cap(self, schedule: NoiseSchedule) -> float:
        """The upper clip of discrete-time ᾱ^i under this protocol (1: none)."""
        return schedule.keep_cap if self.capped else 1.0

    def valid_bound(self, spindle: bool) -> bool:
        """Whether the bound is a valid upper bound on the NLL with the spindle on or off."""
        return not (spindle and self.uses_true_token)

    @abstractmethod
    def posterior_rate(
        self, schedule: NoiseSchedule, u_t: torch.Tensor, u_s: torch.Tensor, w: torch.Tensor | None
    ) -> torch.Tensor:
        """q(x_t = x0 | x_s = [M], x0) for t < s: (B, L) for w (B, L), (B, 1) for w None.

        Args: u_t, u_s (B,) times with u_t < u_s; w the centred information or None.
        """

    @staticmethod
    def exact_rate(a_t: torch.Tensor, a_s: torch.Tensor) -> torch.Tensor:
        """(ᾱ_t − ᾱ_s) / (1 − ᾱ_s), clipped to [0, 1]: the per-token process's posterior."""
        return ((a_t - a_s) / (1.0 - a_s).clamp_min(1e-12)).clamp(0.0, 1.0)


@dataclass(frozen=True)
class ExactProtocol(ReverseProtocol):
    name: ClassVar[str] = "exact"
    uses_true_token: ClassVar[bool] = False
    capped: ClassVar[bool] = False

    def posterior_rate(
        self, schedule: NoiseSchedule, u_t: torch.Tensor, u_s: torch.Tensor, w: torch.Tensor | None
    ) -> torch.Tensor:
        return self.exact_rate(schedule.alpha_bar(u_t, w), schedule.alpha_bar(u_s, w))


@dataclass(frozen=True)
class OfficialProtocol(ReverseProtocol):
    name: ClassVar[str] = "official"
    uses_true_token: ClassVar[bool] = True
    capped: ClassVar[bool] = True

    def posterior_rate(
        self, schedule: NoiseSchedule, u_t: torch.Tensor, u_s: torch.Tensor, w: torch.Tensor | None
    ) -> torch.Tensor:
        """P(x_t = x0) ∝ ᾱ_t^i (1 − ᾱ_s / ᾱ_t), P([M]) ∝ 1 − ᾱ_t^i (ᾱ without i: base);
        without w this equals the exact rate, which is what it returns."""
        a_t = schedule.alpha_bar(u_t, w, cap=schedule.keep_cap)
        if w is None:
            return self.exact_rate(a_t, schedule.alpha_bar(u_s, w))
        base_t = schedule.base_alpha_bar(u_t).unsqueeze(-1)
        base_s = schedule.base_alpha_bar(u_s).unsqueeze(-1)
        reveal = a_t * (1.0 - base_s / base_t.clamp_min(1e-300))
        stay = 1.0 - a_t
        return reveal / (reveal + stay).clamp_min(1e-300)


PROTOCOLS: dict[str, type[ReverseProtocol]] = {
    cls.name: cls for cls in (ExactProtocol, OfficialProtocol)
}


def make_protocol(protocol: str | ReverseProtocol) -> ReverseProtocol:
    """The protocol called ``protocol`` (an instance passes through); ParameterError("protocol")
    for an unknown name."""
    if isinstance(protocol, ReverseProtocol):
        return protocol
    if protocol not in PROTOCOLS:
        raise ParameterError(
            "protocol", f"protocol {protocol!r} is unknown: choose one of {', '.join(PROTOCOLS)}"
        )
    return PROTOCOLS[protocol]()
