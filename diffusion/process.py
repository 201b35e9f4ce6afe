"""The absorbing-state process: forward noising, posteriors, the reverse model's reveal rates.

Everything is per position: ids (B, L), masks (B, L), and the network's distribution over the
vocabulary at the masked positions only, (N, V) with N = number of masked positions. No
vocab × vocab matrix and no one-hot tensor is ever built.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch.utils.checkpoint import checkpoint

from diffusion.schedule import NoiseSchedule
from diffusion.spindle import centred_information

PROTOCOLS = ("exact", "official")
RATE_BLOCK_ELEMENTS = 2**21


@dataclass
class AbsorbingDiffusion:
    """Owns the schedule, the token information ``h`` (V,) for the spindle, and the [M] id.

    ``protocol`` picks the posterior and the reverse model:
    - ``exact``: the true posterior of the per-token process; with the spindle the reverse
      model never sees x0 (candidate-dependent rates from h(v) and an estimated sequence mean).
    - ``official``: the reference code's posterior (per-token marginal times the base schedule's
      Markov transition) with the TRUE token's information plugged into the reverse model.
      Not a valid likelihood bound when the spindle is on.
    """

    schedule: NoiseSchedule
    mask_id: int
    h: torch.Tensor | None = None
    protocol: str = "exact"
    _levels: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol {self.protocol!r} is unknown: choose exact or official")
        if self.schedule.spindle and self.h is None:
            raise ValueError(
                "word_freq_lambda > 0 needs the token information h: pass --word_freq_file"
            )

    def information_levels(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The distinct values of h, (K,), and each token's index among them, (V,) int64.

        The spindle rate depends on a token only through h(v), and h takes few distinct values
        (tokens with equal counts share one), so sums over the vocabulary of p_θ(v) f(h(v))
        become Σ_k f(level_k) · (mass of p_θ on level k): K ≪ V rate evaluations.
        """
        if device not in self._levels:
            levels, group = torch.unique(self.h, return_inverse=True)
            self._levels[device] = (levels.to(device), group.to(device))
        return self._levels[device]

    @property
    def num_steps(self) -> int:
        return self.schedule.num_steps

    def centred(self, x0: torch.Tensor, target_mask: torch.Tensor) -> torch.Tensor | None:
        """Centred information w (B, L) of the true tokens, or None without the spindle."""
        if not self.schedule.spindle:
            return None
        return centred_information(self.h.to(x0.device), x0, target_mask)

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

        Args:
            x0: (B, L) ids; target_mask: (B, L) bool; u: (B,) times in [0, 1].
            draw: optional (B, L) uniforms to use instead of drawing from ``generator``.
        Returns:
            xt (B, L) ids and masked (B, L) bool (the target positions that are [M]).
        """
        keep = self.schedule.alpha_bar(u, self.centred(x0, target_mask), discrete=discrete)
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
        a_t = self.schedule.alpha_bar(u_t, w)
        a_s = self.schedule.alpha_bar(u_s, w)
        if self.protocol == "exact" or w is None:
            return ((a_t - a_s) / (1.0 - a_s).clamp_min(1e-12)).clamp(0.0, 1.0)
        base_t = self.schedule.base_alpha_bar(u_t).unsqueeze(-1)
        base_s = self.schedule.base_alpha_bar(u_s).unsqueeze(-1)
        reveal = a_t * (1.0 - base_s / base_t.clamp_min(1e-300))
        stay = 1.0 - a_t
        return reveal / (reveal + stay).clamp_min(1e-300)

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
        return h.unsqueeze(0) - self._estimated_mean(xs, target_mask, masked, probs).unsqueeze(-1)

    def _estimated_mean(
        self, xs: torch.Tensor, target_mask: torch.Tensor, masked: torch.Tensor, probs: torch.Tensor
    ) -> torch.Tensor:
        """Per masked position (N,): its sequence's mean h over the target positions, with the
        model's expected h standing in at the masked ones."""
        rows = masked.nonzero(as_tuple=True)[0]
        h = self.h.to(device=probs.device, dtype=probs.dtype)
        visible = h[xs] * (target_mask & ~masked)
        total = visible.sum(-1).index_add(0, rows, probs @ h)
        return (total / target_mask.sum(-1).clamp_min(1))[rows]

    def candidate_rate(
        self,
        u_t: torch.Tensor,
        u_s: torch.Tensor,
        xs: torch.Tensor,
        target_mask: torch.Tensor,
        masked: torch.Tensor,
        probs: torch.Tensor,
        candidate: torch.Tensor,
    ) -> torch.Tensor:
        """``model_rate`` of one drawn candidate per masked position, (N,) float64.

        What the ancestral sampler needs: a masked position that drew candidate v ~ p_θ is
        revealed with probability r(v), so P(x_t = v) = p_θ(v) r(v) without any (N, V) rate.
        """
        rows = masked.nonzero(as_tuple=True)[0]
        if not self.schedule.spindle:
            return self.posterior_rate(u_t, u_s, None)[rows].squeeze(-1)
        h = self.h.to(device=probs.device, dtype=torch.float64)
        mean = self._estimated_mean(xs, target_mask, masked, probs).to(torch.float64)
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
            x0: (B, L) true ids, needed (and only used) by the ``official`` protocol.
        Returns:
            (N, 1) when the rate does not depend on the candidate token, else (N, V).
        """
        rows = masked.nonzero(as_tuple=True)[0]
        if not self.schedule.spindle:
            return self.posterior_rate(u_t, u_s, None)[rows].to(probs.dtype)
        if self.protocol == "official":
            if x0 is None:
                raise ValueError("the official protocol needs the true x0 (it leaks it by design)")
            rate = self.posterior_rate(u_t, u_s, self.centred(x0, target_mask))
            return rate[masked].unsqueeze(-1).to(probs.dtype)
        w = self.candidate_information(xs, target_mask, masked, probs)
        return self.spindle_rate(u_t[rows], u_s[rows], w)

    def spindle_rate(self, u_t: torch.Tensor, u_s: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """(ᾱ_t(w) − ᾱ_s(w)) / (1 − ᾱ_s(w)), times (N,), information w (N, K); w's dtype."""
        return self._rate(u_t, u_s, w, w.new_zeros(w.shape[0], 1))

    def reveal_mass(
        self, u_t: torch.Tensor, u_s: torch.Tensor, probs: torch.Tensor, mean: torch.Tensor
    ) -> torch.Tensor:
        """Σ_v p_θ(v) r(v) per masked position, (N,): times (N,), probs (N, V), mean (N,).

        When h has at most V/2 distinct values the probabilities are summed per information
        level first (``information_levels``), so the rate is evaluated on (N, K), not (N, V).
        Computed over blocks of rows so the temporaries stay small; under autograd each block
        is recomputed in backward.
        """
        block = max(1, RATE_BLOCK_ELEMENTS // probs.shape[-1])
        grad = torch.is_grad_enabled() and (probs.requires_grad or mean.requires_grad)
        parts = [
            checkpoint(self._block_mass, a, b, p, m, use_reentrant=False)
            if grad
            else self._block_mass(a, b, p, m)
            for a, b, p, m in zip(
                u_t.split(block),
                u_s.split(block),
                probs.split(block),
                mean.split(block),
                strict=True,
            )
        ]
        return torch.cat(parts) if parts else probs.new_zeros(0)

    def _block_mass(
        self, u_t: torch.Tensor, u_s: torch.Tensor, probs: torch.Tensor, mean: torch.Tensor
    ) -> torch.Tensor:
        levels, group = self.information_levels(probs.device)
        mean = mean.unsqueeze(-1).to(probs.dtype)
        if 2 * levels.numel() > probs.shape[-1]:  # few shared counts: grouping would cost more
            h = self.h.to(device=probs.device, dtype=probs.dtype).unsqueeze(0)
            rate = self._rate(u_t, u_s, h, mean)
            return torch.bmm(probs.unsqueeze(1), rate.unsqueeze(-1)).view(-1)
        mass = probs.new_zeros(probs.shape[0], levels.numel())
        mass = mass.scatter_add(1, group.expand_as(probs), probs)
        rate = self._rate(u_t, u_s, levels.to(probs.dtype).unsqueeze(0), mean)
        return torch.bmm(mass.unsqueeze(1), rate.unsqueeze(-1)).view(-1)

    def _rate(
        self, u_t: torch.Tensor, u_s: torch.Tensor, h: torch.Tensor, mean: torch.Tensor
    ) -> torch.Tensor:
        """The spindle reveal rate at information w = h − mean, in few passes over (N, K).

        ᾱ(w) = clip(base + amp · (h − mean), 0, cap) = clip((base − amp · mean) + amp · h), so
        w is never materialised. Args: u_t, u_s (N,); h (1, K) or (N, K); mean (N, 1).
        Returns (N, K) in h's dtype; rows with u_t = 0 reveal with certainty (ᾱ_0 = 1).
        """
        schedule, dtype = self.schedule, h.dtype

        def keep(u: torch.Tensor) -> torch.Tensor:
            u = u.to(torch.float64).unsqueeze(-1)
            base = schedule.base_alpha_bar(u).to(dtype)
            amp = (schedule.word_freq_lambda * torch.sin(math.pi * u)).to(dtype)
            cap = torch.where(u <= 0, 1.0, schedule.keep_cap).to(dtype)  # ᾱ_0 = 1
            return torch.addcmul(base - amp * mean, amp, h).clamp_(
                min=torch.zeros_like(cap), max=cap
            )

        a_t, a_s = keep(u_t), keep(u_s)
        rate = (a_t - a_s).div_((1.0 - a_s).clamp_min_(1e-12))
        return rate.clamp_(0.0, 1.0) if schedule.allow_nonmonotone else rate


def absorbing_kl(
    a: torch.Tensor,
    log_p_x0: torch.Tensor,
    r_x0: torch.Tensor,
    reveal_mass: torch.Tensor,
) -> torch.Tensor:
    """KL(q ‖ p) over the two outcomes of a masked position, {x0, [M]}.

    q puts ``a`` on x0 and 1 − a on [M]; p puts p_θ(x0) r(x0) on x0 and 1 − Σ_v p_θ(v) r(v) on
    [M] (its mass on other tokens does not enter the KL, since q has none there).

    Args:
        a: (N,) posterior reveal probability.
        log_p_x0: (N,) log p_θ(x0 | x_s).
        r_x0: (N,) model reveal rate of the true token.
        reveal_mass: (N,) Σ_v p_θ(v) r(v).
    Returns:
        (N,) KL in nats.
    """
    log_reveal = log_p_x0 + torch.log(r_x0.clamp_min(1e-300))
    hit = torch.where(a > 0, a * (torch.log(a.clamp_min(1e-300)) - log_reveal), 0.0)
    stay = 1.0 - a
    stay_p = (1.0 - reveal_mass).clamp_min(0.0)
    miss = torch.where(
        stay > 0,
        stay * (torch.log(stay.clamp_min(1e-300)) - torch.log(stay_p.clamp_min(1e-300))),
        0.0,
    )
    return hit + miss


def masked_kl(
    diffusion: AbsorbingDiffusion,
    u_t: torch.Tensor,
    u_s: torch.Tensor,
    x0: torch.Tensor,
    xs: torch.Tensor,
    target_mask: torch.Tensor,
    masked: torch.Tensor,
    log_probs: torch.Tensor,
) -> torch.Tensor:
    """KL(q(x_t | x_s, x0) ‖ p_θ(x_t | x_s)) at every masked position of x_s, (N,).

    Args:
        u_t, u_s: (B,) times with u_t < u_s; x0, xs: (B, L) ids; target_mask, masked: (B, L).
        log_probs: log p_θ(x0 | x_s) at the masked positions, (N, V).
    """
    w = diffusion.centred(x0, target_mask)
    a = diffusion.posterior_rate(u_t, u_s, w)
    a = (a.expand_as(x0)[masked]).to(log_probs.dtype)
    probs = log_probs.exp()
    target = x0[masked]
    log_p_x0 = log_probs.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    if diffusion.schedule.spindle and diffusion.protocol == "exact":
        rows = masked.nonzero(as_tuple=True)[0]
        mean = diffusion._estimated_mean(xs, target_mask, masked, probs)
        h = diffusion.h.to(device=probs.device, dtype=probs.dtype)
        r_x0 = diffusion.spindle_rate(u_t[rows], u_s[rows], (h[target] - mean).unsqueeze(-1))[:, 0]
        reveal_mass = diffusion.reveal_mass(u_t[rows], u_s[rows], probs, mean)
        return absorbing_kl(a, log_p_x0, r_x0, reveal_mass)
    r = diffusion.model_rate(u_t, u_s, xs, target_mask, masked, probs, x0=x0)
    if r.shape[-1] == 1:
        r_x0 = r.squeeze(-1)
        reveal_mass = r_x0
    else:
        r_x0 = r.gather(-1, target.unsqueeze(-1)).squeeze(-1)
        reveal_mass = (probs * r).sum(-1)
    return absorbing_kl(a, log_p_x0, r_x0, reveal_mass)
