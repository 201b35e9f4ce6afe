"""Brute-force enumeration on a tiny vocabulary and length: a fixed stand-in network, the
exact expected NELBO and the exact distribution of the reverse chain's samples."""

import itertools
import math

import torch

from diffusion import AbsorbingDiffusion, NoiseSchedule, masked_kl, token_information
from tests import dense_reference as ref

L = 2
TOKENS = range(ref.V - 1)


class TinyNet:
    """A fixed network of x_t: logits at position i = A[i] + B[x_t at the other position]."""

    def __init__(self, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.a = torch.randn(L, ref.V, generator=g, dtype=torch.float64)
        self.b = torch.randn(ref.V, ref.V, generator=g, dtype=torch.float64)

    def __call__(self, xt, u, masked):
        rows, cols = masked.nonzero(as_tuple=True)
        logits = self.a[cols] + self.b[xt[rows, 1 - cols]]
        logits[:, ref.MASK] = -math.inf
        return logits.log_softmax(-1)


def make_diffusion(
    lam: float, T: int, protocol: str = "exact", keep_cap: float = 0.999
) -> AbsorbingDiffusion:
    """Tokens 0 and 4 are frequent (h = 1 and 0.85), 1, 3 and 5 rare."""
    h = token_information(torch.tensor([500, 3, 60, 9, 200, 1, 0]))
    schedule = NoiseSchedule("mutual", T, lam, keep_cap=keep_cap)
    return AbsorbingDiffusion(schedule, ref.MASK, h, protocol)


def exact_nelbo(diffusion, net, x0: torch.Tensor, step: int) -> float:
    """Σ over terms of E_{x_s ~ q}[Σ_i KL_i], enumerating the 2^L masking patterns of x_s."""
    T = diffusion.num_steps
    target = torch.ones(1, L, dtype=torch.bool)
    total = 0.0
    for t in range(T - step, -1, -step):
        s = t + step
        u_t = torch.tensor([t / T], dtype=torch.float64)
        u_s = torch.tensor([s / T], dtype=torch.float64)
        keep = diffusion.alpha_bar(u_s, diffusion.centred(x0, target)).expand(1, L)[0]
        for pattern in itertools.product([False, True], repeat=L):
            masked = torch.tensor([pattern])
            prob = math.prod((1 - keep[i]) if m else keep[i] for i, m in enumerate(pattern))
            if not masked.any() or prob == 0:
                continue
            xs = x0.masked_fill(masked, ref.MASK)
            kl, _ = masked_kl(diffusion, u_t, u_s, x0, xs, target, masked, net(xs, u_s, masked))
            total += float(prob) * kl.sum().item()
    return total


def model_distribution(diffusion, net, step: int) -> dict[tuple[int, ...], float]:
    """p_θ(x0) of the reverse chain, by pushing the full state distribution down from x_T."""
    T = diffusion.num_steps
    target = torch.ones(1, L, dtype=torch.bool)
    states = {(ref.MASK,) * L: 1.0}
    for s in range(T, 0, -step):
        t = s - step
        u_t = torch.tensor([t / T], dtype=torch.float64)
        u_s = torch.tensor([s / T], dtype=torch.float64)
        nxt: dict[tuple[int, ...], float] = {}
        for state, p_state in states.items():
            xs = torch.tensor([state])
            masked = xs == ref.MASK
            options = [[(v, 1.0)] for v in state]
            if masked.any():
                probs = net(xs, u_s, masked).exp()
                rate = diffusion.model_rate(u_t, u_s, xs, target, masked, probs)
                reveal = (probs * rate).expand_as(probs)
                for k, i in enumerate(masked[0].nonzero().flatten().tolist()):
                    stay = 1 - reveal[k].sum().item()
                    options[i] = [(v, reveal[k, v].item()) for v in TOKENS] + [(ref.MASK, stay)]
            for combo in itertools.product(*options):
                key = tuple(v for v, _ in combo)
                nxt[key] = nxt.get(key, 0.0) + p_state * math.prod(p for _, p in combo)
        states = nxt
    return states
