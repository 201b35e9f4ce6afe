"""Likelihood bounds against brute-force enumeration on a tiny vocabulary and length."""

import itertools
import math

import pytest
import torch

from diffusion import (
    AbsorbingDiffusion,
    NoiseSchedule,
    continuous_nelbo,
    discrete_nelbo,
    masked_kl,
    token_information,
)
from models.evaluation import length_nll, sequence_bounds, summarise
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


def _diffusion(lam: float, T: int) -> AbsorbingDiffusion:
    h = token_information(torch.tensor([500, 3, 60, 9, 200, 1, 0]))
    return AbsorbingDiffusion(NoiseSchedule("mutual", T, lam), ref.MASK, h)


def exact_nelbo(diffusion, net, x0: torch.Tensor, step: int) -> float:
    """Σ over terms of E_{x_s ~ q}[Σ_i KL_i], enumerating the 2^L masking patterns of x_s."""
    T = diffusion.num_steps
    target = torch.ones(1, L, dtype=torch.bool)
    total = 0.0
    for t in range(T - step, -1, -step):
        s = t + step
        u_t = torch.tensor([t / T], dtype=torch.float64)
        u_s = torch.tensor([s / T], dtype=torch.float64)
        keep = diffusion.schedule.alpha_bar(u_s, diffusion.centred(x0, target)).expand(
            1, L
        )[0]
        for pattern in itertools.product([False, True], repeat=L):
            masked = torch.tensor([pattern])
            prob = math.prod(
                (1 - keep[i]) if m else keep[i] for i, m in enumerate(pattern)
            )
            if not masked.any() or prob == 0:
                continue
            xs = x0.masked_fill(masked, ref.MASK)
            kl = masked_kl(
                diffusion, u_t, u_s, x0, xs, target, masked, net(xs, u_s, masked)
            )
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
                    options[i] = [(v, reveal[k, v].item()) for v in TOKENS] + [
                        (ref.MASK, stay)
                    ]
            for combo in itertools.product(*options):
                key = tuple(v for v, _ in combo)
                nxt[key] = nxt.get(key, 0.0) + p_state * math.prod(p for _, p in combo)
        states = nxt
    return states


@pytest.mark.parametrize(("lam", "T", "step"), [(0.0, 8, 1), (0.3, 8, 1), (0.3, 12, 3)])
def test_discrete_nelbo_is_an_unbiased_upper_bound(lam, T, step):
    diffusion, net = _diffusion(lam, T), TinyNet()
    p = model_distribution(diffusion, net, step)
    assert sum(p.values()) == pytest.approx(1.0, abs=1e-9)
    assert all(ref.MASK not in x for x, v in p.items() if v > 1e-15)
    for x0 in [(0, 2), (4, 4), (1, 5)]:
        x0 = torch.tensor([x0])
        bound = exact_nelbo(diffusion, net, x0, step)
        nll = -math.log(p[tuple(x0[0].tolist())])
        assert bound >= nll - 1e-9
        n = 4000
        draws = discrete_nelbo(
            diffusion, net, x0.expand(n, L), torch.ones(n, L, dtype=torch.bool), step,
            torch.Generator().manual_seed(1),
        )  # fmt: skip
        se = draws.std().item() / math.sqrt(n)
        assert abs(draws.mean().item() - bound) < 5 * se + 1e-9


@pytest.mark.parametrize("lam", [0.0, 0.3])
def test_continuous_nelbo_is_the_many_step_limit(lam):
    """K stratified draws of the continuous bound average to the exact T=1024 discrete NELBO."""
    T = 1024
    diffusion, net = _diffusion(lam, T), TinyNet(2)
    x0 = torch.tensor([[0, 3]])
    discrete = exact_nelbo(diffusion, net, x0, 1)
    n = 2000
    draws = continuous_nelbo(
        diffusion, net, x0.expand(n, L), torch.ones(n, L, dtype=torch.bool), 4,
        torch.Generator().manual_seed(0),
    ).mean(-1)  # fmt: skip
    se = draws.std().item() / math.sqrt(n)
    assert abs(draws.mean().item() - discrete) < 5 * se + 0.01 * discrete


def test_the_scripts_path_matches_the_exact_expectation():
    """models.evaluation (what compute_elbo.py calls) averages to the enumerated NELBO."""
    diffusion, net = _diffusion(0.3, 8), TinyNet(4)
    x0 = torch.tensor([[2, 0]])
    n = 3000
    batches = [(x0.expand(500, L), torch.ones(500, L, dtype=torch.bool))] * (n // 500)
    values, tokens = sequence_bounds(diffusion, net, batches, "discrete", 2, seed=3)
    assert values.shape == (n, 1) and tokens.tolist() == [L] * n
    exact = exact_nelbo(diffusion, net, x0, 2)
    se = values.std().item() / math.sqrt(n)
    assert abs(values.mean().item() - exact) < 5 * se


@pytest.mark.parametrize("bound", ["discrete", "continuous"])
def test_exact_and_official_protocols_agree_only_without_spindle(bound):
    x0 = torch.tensor([[2, 0], [5, 1]]).repeat(50, 1)
    target = torch.ones_like(x0, dtype=torch.bool)
    figures = {}
    for lam in (0.0, 0.3):
        for protocol in ("exact", "official"):
            diffusion = _diffusion(lam, 16)
            diffusion.protocol = protocol
            values, _ = sequence_bounds(
                diffusion, TinyNet(), [(x0, target)], bound, 1, 2, seed=0
            )
            figures[lam, protocol] = values
    assert torch.allclose(figures[0.0, "exact"], figures[0.0, "official"], atol=1e-12)
    assert not torch.allclose(
        figures[0.3, "exact"], figures[0.3, "official"], atol=1e-3
    )


def test_length_cost_and_summary_by_hand():
    counts = torch.tensor(
        [0, 3, 0, 1]
    )  # lengths 1 (3×) and 3 (1×); smoothed: 4, 1, 2 of 7
    nll = length_nll(counts, torch.tensor([1, 2, 3]))
    assert torch.allclose(
        nll, -torch.log(torch.tensor([4 / 7, 1 / 7, 2 / 7], dtype=torch.float64))
    )
    values = torch.tensor([[2.0, 4.0], [6.0, 6.0]], dtype=torch.float64)
    out = summarise(values, torch.tensor([2, 4]), torch.tensor([1, 3]))
    assert out["nats_per_token"] == pytest.approx(9 / 6)
    assert out["bits_per_token"] == pytest.approx(9 / 6 / math.log(2))
    assert out["ppl_per_word"] == pytest.approx(math.exp(9 / 4))
    assert out["nats_per_sequence"] == pytest.approx(4.5)
    assert out["nats_per_token_se"] == pytest.approx(math.sqrt(4.5) * math.sqrt(2) / 6)
    assert summarise(values[:1], torch.tensor([0 + 1]))["nats_per_token_se"] == 0.0
