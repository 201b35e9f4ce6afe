"""The per-position KL of the discrete-time bound, KL(q(x_t | x_s, x0) ‖ p_θ(x_t | x_s)).

Without the spindle (or with a protocol whose model uses the true token's rate, ``official``)
the model's reveal rate does not depend on the candidate token and the KL is −a · log p_θ(x0).
With the spindle and the ``exact`` protocol it needs Σ_v p_θ(v) r(v) with token-dependent
rates and an estimated sequence mean that couples the masked positions of a sequence;
``SpindleKL`` computes it over row blocks and writes its gradient straight into one (N, V)
buffer, so a training step keeps no (N, V) tensor beyond the network's log-probabilities and
that gradient. ``continuous_integrand`` is the continuous-time bound's counterpart: the rate of
the path-space KL at one time.
"""

from __future__ import annotations

from typing import Any

import torch

from diffusion.blocks import row_blocks
from diffusion.process import AbsorbingDiffusion


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
) -> tuple[torch.Tensor, torch.Tensor]:
    """KL(q(x_t | x_s, x0) ‖ p_θ(x_t | x_s)) and log p_θ(x0 | x_s) at every masked position.

    Args:
        u_t, u_s: (B,) times with u_t < u_s; x0, xs: (B, L) ids; target_mask, masked: (B, L).
        log_probs: log p_θ(x0 | x_s) at the masked positions, (N, V).
    Returns:
        (N,) KL in nats and (N,) log p_θ(x0), both in log_probs' dtype.
    """
    target = x0[masked]
    if not diffusion.candidate_rates:
        log_p_x0 = log_probs.gather(-1, target.unsqueeze(-1)).squeeze(-1)
        return reveal_kl(diffusion, u_t, u_s, x0, target_mask, masked, log_p_x0), log_p_x0
    a = diffusion.posterior_rate(u_t, u_s, diffusion.centred(x0, target_mask))
    rows = masked.nonzero(as_tuple=True)[0]
    h = diffusion.h.to(device=x0.device, dtype=torch.float64)
    visible = (h[xs] * (target_mask & ~masked)).sum(-1)
    count = target_mask.sum(-1).clamp_min(1).to(torch.float64)
    return SpindleKL.apply(
        log_probs, diffusion, u_t, u_s, a.expand_as(x0)[masked], target, rows, visible, count
    )


def reveal_kl(
    diffusion: AbsorbingDiffusion,
    u_t: torch.Tensor,
    u_s: torch.Tensor,
    x0: torch.Tensor,
    target_mask: torch.Tensor,
    masked: torch.Tensor,
    log_p_x0: torch.Tensor,
) -> torch.Tensor:
    """The KL at the masked positions, (N,), when the model's reveal rate does not depend on
    the candidate (no spindle, or a protocol whose model uses the true token's rate,
    ``official``): the rates then equal the posterior's a and the KL is −a · log p_θ(x0).

    Args: u_t, u_s (B,); x0, target_mask, masked (B, L); log_p_x0 (N,).
    """
    a = diffusion.posterior_rate(u_t, u_s, diffusion.centred(x0, target_mask))
    return -a.expand_as(x0)[masked].to(log_p_x0.dtype) * log_p_x0


class SpindleKL(torch.autograd.Function):
    """The exact-protocol spindle KL from log_probs (N, V), with a hand-written backward.

    Per masked position i of sequence b: m_b = (Σ visible h + Σ_{j∈b} Σ_v p_j(v) h(v)) / n_b,
    M_i = Σ_v p_i(v) r_b(v) with r_b = ``rate_table`` (one row per sequence) and KL_i =
    ``absorbing_kl``(a_i, log p_i(x0), r_b(x0), M_i). The vocabulary sums run over row
    blocks; backward writes p_i(v) (∂KL/∂M_i r_b(v) + ∂KL/∂e_i h(v)) straight into one (N, V)
    gradient, e_i = Σ_v p_i(v) h(v), with the path through m_b from the rates' slope ∂r/∂m.
    """

    @staticmethod
    def forward(ctx: Any, *args: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """``_forward`` with autocast off, so the vocabulary sums keep log_probs' dtype."""
        with torch.autocast(args[0].device.type, enabled=False):
            return SpindleKL._forward(ctx, *args)

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
        with torch.autocast(ctx.saved_tensors[0].device.type, enabled=False):
            return SpindleKL._backward(ctx, *grads)

    @staticmethod
    def _forward(
        ctx: Any,
        log_probs: torch.Tensor,
        diffusion: AbsorbingDiffusion,
        u_t: torch.Tensor,
        u_s: torch.Tensor,
        a: torch.Tensor,
        target: torch.Tensor,
        rows: torch.Tensor,
        visible: torch.Tensor,
        count: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Args: log_probs (N, V); u_t, u_s (B,) float64; a (N,) float64 posterior rates;
        target (N,) ids; rows (N,) the sequence of each position, ascending; visible, count
        (B,) float64: Σ h of the unmasked target tokens and the number of target positions.
        Returns KL (N,) and log p(x0) (N,), in log_probs' dtype."""
        grad = ctx.needs_input_grad[0]
        h = diffusion.h.to(device=log_probs.device, dtype=log_probs.dtype)
        blocks = _Blocks(rows, log_probs.shape[-1])
        # without a gradient to keep small, exp each block once and keep it for both passes
        kept = None if grad else [log_probs[b].exp() for b in blocks.slices]

        def block_probs(i: int) -> torch.Tensor:
            return log_probs[blocks.slices[i]].exp() if kept is None else kept[i]

        expected_h = blocks.cat([block_probs(i) @ h for i in blocks], (0,), log_probs)
        mean = visible.index_add(0, rows, expected_h.to(visible.dtype)) / count
        rates, slopes = diffusion.rate_table(u_t, u_s, mean, slope=grad)
        tables = [rates] if slopes is None else [rates, slopes]
        sums = [blocks.sequence_dots(i, block_probs(i), tables) for i in blocks]
        sums = blocks.cat(sums, (0, len(tables)), log_probs).to(torch.float64)
        log_p_x0 = log_probs.gather(-1, target.unsqueeze(-1)).squeeze(-1)
        r_x0 = rates[rows, target]
        kl = absorbing_kl(a, log_p_x0.to(torch.float64), r_x0, sums[:, 0])
        ctx.diffusion, ctx.blocks = diffusion, blocks
        ctx.save_for_backward(
            log_probs, a, target, rows, visible, count, log_p_x0, expected_h, sums, *tables
        )
        return kl.to(log_probs.dtype), log_p_x0

    @staticmethod
    def _backward(ctx: Any, grad_kl: torch.Tensor | None, grad_log_p_x0: torch.Tensor | None):
        log_probs, a, target, rows, visible, count, log_p_x0, expected_h, sums, rates, slopes = (
            ctx.saved_tensors
        )
        if grad_kl is None:
            grad_kl = torch.zeros_like(log_p_x0)
        with torch.enable_grad():
            leaves = [
                t.detach().to(torch.float64).requires_grad_()
                for t in (log_p_x0, expected_h, sums[:, 0])
            ]
            mean = visible.index_add(0, rows, leaves[1]) / count
            shift = (mean - mean.detach())[rows]  # value 0, derivative 1: first order in m_b
            r_x0 = rates[rows, target] + slopes[rows, target] * shift
            kl = absorbing_kl(a, leaves[0], r_x0, leaves[2] + sums[:, 1] * shift)
            d_log_p_x0, d_expected, d_mass = torch.autograd.grad(kl, leaves, grad_kl.to(kl.dtype))
        if grad_log_p_x0 is not None:
            d_log_p_x0 = d_log_p_x0 + grad_log_p_x0
        dtype = log_probs.dtype
        h = ctx.diffusion.h.to(device=log_probs.device, dtype=dtype)
        rates = rates.to(dtype)
        grad = torch.empty_like(log_probs)
        for b in ctx.blocks.slices:
            block = grad[b]
            torch.index_select(rates, 0, rows[b], out=block)
            block.mul_(d_mass[b].to(dtype).unsqueeze(-1)).addr_(d_expected[b].to(dtype), h)
            block.mul_(log_probs[b].exp())
        grad.scatter_add_(-1, target.unsqueeze(-1), d_log_p_x0.to(dtype).unsqueeze(-1))
        return grad, None, None, None, None, None, None, None, None


class _Blocks:
    """Row blocks (``diffusion.blocks.row_blocks``) and the sequences each block touches.

    Iterating gives the block indices; ``slices`` the row ranges.
    """

    def __init__(self, rows: torch.Tensor, vocab: int):
        self.slices = row_blocks(rows.numel(), vocab, rows.device)
        ends = [b.start for b in self.slices] + [b.stop - 1 for b in self.slices]
        bounds = rows[ends].tolist() if ends else []
        self.first = bounds[: len(self.slices)]
        self.last = bounds[len(self.slices) :]
        self.rows = rows

    def __iter__(self):
        return iter(range(len(self.slices)))

    def sequence_dots(
        self, i: int, probs: torch.Tensor, tables: list[torch.Tensor]
    ) -> torch.Tensor:
        """Σ_v p_j(v) table_k[b(j), v] for the rows j of block i: probs (n, V), tables of
        (B, V) → (n, K). One matrix product against the rows of the sequences in the block."""
        first, count = self.first[i], self.last[i] - self.first[i] + 1
        stacked = torch.cat([t[first : first + count] for t in tables]).to(probs.dtype)
        products = probs @ stacked.T
        offsets = count * torch.arange(len(tables), device=probs.device)
        column = (self.rows[self.slices[i]] - first).unsqueeze(-1) + offsets
        return products.gather(1, column)

    @staticmethod
    def cat(parts: list[torch.Tensor], empty: tuple[int, ...], like: torch.Tensor):
        return torch.cat(parts) if parts else like.new_zeros(empty)


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
