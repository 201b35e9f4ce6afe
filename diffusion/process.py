"""The absorbing-state process: forward noising, posteriors, the reverse model's reveal rates.

Everything is per position: ids (B, L), masks (B, L), and the network's distribution over the
vocabulary at the masked positions only, (N, V) with N = number of masked positions. No
vocab × vocab matrix and no one-hot tensor is ever built. The reverse-model protocol
(``diffusion.protocols``) decides the posterior's form and what the model may look at.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from diffusion.errors import ParameterError
from diffusion.protocols import ReverseProtocol, make_protocol
from diffusion.schedule import NoiseSchedule
from diffusion.spindle import centred_information


@dataclass
class AbsorbingDiffusion:
    """Owns the schedule, the token information ``h`` (V,) for the spindle, and the [M] id.

    ``protocol`` (a ``ReverseProtocol`` or its name in ``PROTOCOLS``, resolved to the object)
    picks the posterior and the reverse model: ``exact`` (the default) or ``official``, the
    reference code's, which is not a valid likelihood bound with the spindle on.
    """

    schedule: NoiseSchedule
    mask_id: int
    h: torch.Tensor | None = None
    protocol: ReverseProtocol | str = "exact"

    def __post_init__(self) -> None:
        self.protocol = make_protocol(self.protocol)
        if self.schedule.spindle and self.h is None:
            raise ParameterError(
                "h",
                "h (token information) is missing: token counts are needed for "
                "word_freq_lambda > 0",
            )

    @property
    def candidate_rates(self) -> bool:
        """Whether the model's reveal rate depends on the candidate token (spindle, a protocol
        that does not use the true token), so that the KL needs the whole p_θ(x0 | x_s)."""
        return self.schedule.spindle and not self.protocol.uses_true_token

    @property
    def valid_bound(self) -> bool:
        """Whether the bounds are valid upper bounds on the NLL (False only for the official
        protocol with the spindle on)."""
        return self.protocol.valid_bound(self.schedule.spindle)

    @property
    def num_steps(self) -> int:
        return self.schedule.num_steps

    def centred(self, x0: torch.Tensor, target_mask: torch.Tensor) -> torch.Tensor | None:
        """Centred information w (B, L) of the true tokens, or None without the spindle."""
        if not self.schedule.spindle:
            return None
        return centred_information(self.h.to(x0.device), x0, target_mask)

    def alpha_bar(
        self, u: torch.Tensor, w: torch.Tensor | None, discrete: bool = True
    ) -> torch.Tensor:
        """The forward marginal ᾱ^i under this protocol: ``NoiseSchedule.alpha_bar`` with the
        protocol's keep cap in discrete time (none in continuous time). Shapes as there."""
        cap = self.protocol.keep_cap(self.schedule) if discrete else 1.0
        return self.schedule.alpha_bar(u, w, cap=cap)

    def q_sample(
        self,
        x0: torch.Tensor,
        target_mask: torch.Tensor,
        u: torch.Tensor,
        generator: torch.Generator | None = None,
        discrete: bool = True,
        draw: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw x_u ~ q(x_u | x0): each target token kept with probability ᾱ_u^i, else [M].

        ᾱ_u^i is ``alpha_bar``: the same marginal the posterior and the model's rates use.

        Args:
            x0: (B, L) ids; target_mask: (B, L) bool; u: (B,) times in [0, 1].
            discrete: discrete time (the protocol's keep cap applies) or continuous (none).
            draw: optional (B, L) uniforms to use instead of drawing from ``generator``.
        Returns:
            xt (B, L) ids and masked (B, L) bool (the target positions that are [M]).
        """
        keep = self.alpha_bar(u, self.centred(x0, target_mask), discrete)
        if draw is None:
            draw = torch.rand(x0.shape, generator=generator, device=x0.device, dtype=torch.float64)
        masked = (draw >= keep) & target_mask
        return x0.masked_fill(masked, self.mask_id), masked

    def posterior_rate(
        self, u_t: torch.Tensor, u_s: torch.Tensor, w: torch.Tensor | None
    ) -> torch.Tensor:
        """q(x_t = x0 | x_s = [M], x0) for t < s, per position: (B, L), or (B, 1) without spindle.

        Args:
            u_t, u_s: (B,) times with u_t < u_s.
            w: centred information (B, L) of the tokens whose rate is asked, or None.
        """
        return self.protocol.posterior_rate(self.schedule, u_t, u_s, w)

    def candidate_information(
        self,
        xs: torch.Tensor,
        target_mask: torch.Tensor,
        masked: torch.Tensor,
        probs: torch.Tensor,
    ) -> torch.Tensor:
        """Centred information of every candidate token at the masked positions, (N, V).

        The sequence mean is estimated without x0: h of the visible target tokens of x_s plus
        the model's expected h, Σ_v p_θ(v) h(v), at each masked position.
        """
        h = self.h.to(device=probs.device, dtype=probs.dtype)
        mean = self.estimated_mean(xs, target_mask, masked, self.expected_information(probs))
        return h.unsqueeze(0) - mean.unsqueeze(-1)

    def expected_information(self, probs: torch.Tensor) -> torch.Tensor | None:
        """Σ_v p(v) h(v) per row of probabilities (N, V): (N,) in probs' dtype; None without
        the spindle (nothing needs it)."""
        if not self.schedule.spindle:
            return None
        return probs @ self.h.to(device=probs.device, dtype=probs.dtype)

    def estimated_mean(
        self,
        xs: torch.Tensor,
        target_mask: torch.Tensor,
        masked: torch.Tensor,
        expected: torch.Tensor,
    ) -> torch.Tensor:
        """Per masked position (N,): its sequence's mean h over the target positions, with the
        model's expected h (``expected``, (N,)) standing in at the masked ones."""
        rows = masked.nonzero(as_tuple=True)[0]
        h = self.h.to(device=expected.device, dtype=expected.dtype)
        visible = h[xs] * (target_mask & ~masked)
        total = visible.sum(-1).index_add(0, rows, expected)
        return (total / target_mask.sum(-1).clamp_min(1))[rows]

    def candidate_rate(
        self,
        u_t: torch.Tensor,
        u_s: torch.Tensor,
        xs: torch.Tensor,
        target_mask: torch.Tensor,
        masked: torch.Tensor,
        expected: torch.Tensor | None,
        candidate: torch.Tensor,
    ) -> torch.Tensor:
        """``model_rate`` of one drawn candidate per masked position, (N,) float64.

        What the ancestral sampler needs: a masked position that drew candidate v ~ p_θ is
        revealed with probability r(v), so P(x_t = v) = p_θ(v) r(v) without any (N, V) rate.
        ``expected`` (N,) is ``expected_information`` of the probabilities drawn from (None
        without the spindle).
        """
        rows = masked.nonzero(as_tuple=True)[0]
        if not self.schedule.spindle:
            return self.posterior_rate(u_t, u_s, None)[rows].squeeze(-1)
        h = self.h.to(device=expected.device, dtype=torch.float64)
        mean = self.estimated_mean(xs, target_mask, masked, expected).to(torch.float64)
        return self.spindle_rate(u_t[rows], u_s[rows], (h[candidate] - mean).unsqueeze(-1))[:, 0]

    def model_rate(
        self,
        u_t: torch.Tensor,
        u_s: torch.Tensor,
        xs: torch.Tensor,
        target_mask: torch.Tensor,
        masked: torch.Tensor,
        probs: torch.Tensor,
        x0: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Reveal rate r of p_θ(x_t | x_s) at the masked positions: P(x_t = v) = p_θ(v) r(v).

        Args:
            u_t, u_s: (B,) times, u_t < u_s.
            xs: (B, L) ids at time s; target_mask, masked: (B, L) bool.
            probs: p_θ(x0 | x_s) at the masked positions in row-major order, (N, V).
            x0: (B, L) true ids, needed (and only used) by a protocol that uses the true token.
        Returns:
            (N, 1) when the rate does not depend on the candidate token, else (N, V).
        """
        rows = masked.nonzero(as_tuple=True)[0]
        if not self.schedule.spindle:
            return self.posterior_rate(u_t, u_s, None)[rows].to(probs.dtype)
        if self.protocol.uses_true_token:
            if x0 is None:
                raise ParameterError(
                    "x0", f"x0 is needed by the {self.protocol.name} protocol (it leaks it)"
                )
            rate = self.posterior_rate(u_t, u_s, self.centred(x0, target_mask))
            return rate[masked].unsqueeze(-1).to(probs.dtype)
        w = self.candidate_information(xs, target_mask, masked, probs)
        return self.spindle_rate(u_t[rows], u_s[rows], w)

    def spindle_rate(self, u_t: torch.Tensor, u_s: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """(ᾱ_t(w) − ᾱ_s(w)) / (1 − ᾱ_s(w)), times (N,), information w (N, K); w's dtype."""
        return self._rate(u_t, u_s, w, w.new_zeros(w.shape[0], 1))[0]

    def rate_table(
        self, u_t: torch.Tensor, u_s: torch.Tensor, mean: torch.Tensor, slope: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The spindle reveal rate r(v) of every token, one row per sequence: (B, V) float64.

        The rate depends on a candidate token only through h(v) and on its position only
        through the sequence's times and estimated mean information, so one row serves all
        masked positions of a sequence.

        Args:
            u_t, u_s: (B,) times, u_t < u_s; mean: (B,) estimated mean information.
            slope: also return ∂r/∂mean, (B, V).
        Returns:
            the rates and their slope (None without ``slope``).
        """
        h = self.h.to(device=mean.device, dtype=torch.float64).unsqueeze(0)
        return self._rate(u_t, u_s, h, mean.to(torch.float64).unsqueeze(-1), slope)

    def _rate(
        self,
        u_t: torch.Tensor,
        u_s: torch.Tensor,
        h: torch.Tensor,
        mean: torch.Tensor,
        slope: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The spindle reveal rate at information w = h − mean, and optionally ∂rate/∂mean.

        ᾱ(w) from ``NoiseSchedule.alpha_bar_from_mean``, so w is never materialised.
        Args: u_t, u_s (N,); h (1, K) or (N, K); mean (N, 1). Returns (N, K) in h's dtype
        (rows with u_t = 0 reveal with certainty, ᾱ_0 = 1), and the slope with the one-sided
        conventions of autograd's clamp, or None.
        """
        schedule, dtype = self.schedule, h.dtype
        cap = self.protocol.keep_cap(schedule)
        a_t, inside_t = schedule.alpha_bar_from_mean(u_t, h, mean, cap, slope)
        a_s, inside_s = schedule.alpha_bar_from_mean(u_s, h, mean, cap, slope)
        stay = 1.0 - a_s
        denominator = stay.clamp_min(1e-12)
        rate = (a_t - a_s).div_(denominator)
        derivative = None
        if slope:  # ∂a_u/∂mean = −amp_u inside the clip; ∂r = (∂a_t − (1 − r) ∂a_s) / (1 − a_s)
            amp_t = schedule.amplitude(u_t.to(torch.float64)).to(dtype).unsqueeze(-1)
            amp_s = schedule.amplitude(u_s.to(torch.float64)).to(dtype).unsqueeze(-1)
            d_t = -amp_t * inside_t
            d_s = -amp_s * inside_s
            d_s_through_stay = torch.where(stay >= 1e-12, d_s, 0.0)
            derivative = (d_t - d_s + rate * d_s_through_stay) / denominator
        if schedule.allow_nonmonotone:
            if derivative is not None:
                derivative = derivative * ((rate >= 0) & (rate <= 1))
            rate = rate.clamp_(0.0, 1.0)
        return rate, derivative
