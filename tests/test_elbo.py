"""Likelihood bounds against brute-force enumeration on a tiny vocabulary and length."""

import math

import pytest
import torch

from diffusion import (
    continuous_nelbo,
    discrete_nelbo,
)
from evaluation.bounds import length_nll, sequence_bounds, summarise
from tests import dense_reference as ref
from tests.enumeration import (
    L,
    TinyNet,
    exact_nelbo,
    make_diffusion,
    model_distribution,
)


@pytest.mark.parametrize(("lam", "T", "step"), [(0.0, 8, 1), (0.3, 8, 1), (0.3, 12, 3)])
def test_discrete_nelbo_is_an_unbiased_upper_bound(lam, T, step):
    diffusion, net = make_diffusion(lam, T), TinyNet()
    p = model_distribution(diffusion, net, step)
    assert sum(p.values()) == pytest.approx(1.0, abs=1e-9)
    assert all(ref.MASK not in x for x, v in p.items() if v > 1e-15)
    for ids in [(0, 2), (4, 4), (1, 5)]:
        x0 = torch.tensor([ids])
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


def test_exact_bound_at_step_one_where_a_keep_cap_would_bind():
    """S = 1 with frequent tokens, keep_cap 0.8 at T = 8 (as 0.999 at T = 2048): at t = 1 the
    model's w for the frequent candidate 0 is capped at t and s, so a capped model would give
    it rate 0 while the true token's a > 0 (an infinite KL). The exact protocol applies no
    cap: its NELBO is finite, above the NLL, and the sampled bound averages to it."""
    diffusion, net = make_diffusion(0.3, 8, keep_cap=0.8), TinyNet()
    x0, target = torch.tensor([[0, 4]]), torch.ones(1, L, dtype=torch.bool)
    masked = torch.tensor([[True, False]])
    xs = x0.masked_fill(masked, ref.MASK)
    u_t, u_s = torch.tensor([1 / 8, 2 / 8], dtype=torch.float64).split(1)
    probs = net(xs, u_s, masked).exp()
    w_model = diffusion.candidate_information(xs, target, masked, probs)[0, 0].item()
    w_true = diffusion.centred(x0, target)[0, 0].item()

    def capped_rate(w: float) -> float:
        a_t, a_s = (diffusion.schedule.alpha_bar(u, torch.tensor([[w]]), cap=0.8).item()
                    for u in (u_t, u_s))  # fmt: skip
        return (a_t - a_s) / (1 - a_s)

    assert capped_rate(w_model) == 0 < capped_rate(w_true)
    p = model_distribution(diffusion, net, 1)
    for ids in [(0, 4), (4, 0), (0, 0)]:
        x0 = torch.tensor([ids])
        bound = exact_nelbo(diffusion, net, x0, 1)
        assert math.isfinite(bound) and bound >= -math.log(p[ids]) - 1e-9
        n = 4000
        draws = discrete_nelbo(
            diffusion, net, x0.expand(n, L), torch.ones(n, L, dtype=torch.bool), 1,
            torch.Generator().manual_seed(1),
        )  # fmt: skip
        assert abs(draws.mean().item() - bound) < 5 * draws.std().item() / math.sqrt(n) + 1e-9


@pytest.mark.parametrize("lam", [0.0, 0.3])
def test_continuous_nelbo_is_the_many_step_limit(lam):
    """K stratified draws of the continuous bound average to the exact T=1024 discrete NELBO."""
    T = 1024
    diffusion, net = make_diffusion(lam, T), TinyNet(2)
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
    diffusion, net = make_diffusion(0.3, 8), TinyNet(4)
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
            diffusion = make_diffusion(lam, 16, protocol)
            assert diffusion.protocol.name == protocol
            assert diffusion.valid_bound == (lam == 0.0 or protocol == "exact")
            values, _ = sequence_bounds(diffusion, TinyNet(), [(x0, target)], bound, 1, 2, seed=0)
            figures[lam, protocol] = values
    assert torch.allclose(figures[0.0, "exact"], figures[0.0, "official"], atol=1e-12)
    assert not torch.allclose(figures[0.3, "exact"], figures[0.3, "official"], atol=1e-3)


def test_length_cost_and_summary_by_hand():
    counts = torch.tensor([0, 3, 0, 1])  # lengths 1 (3×) and 3 (1×); smoothed: 4, 1, 2 of 7
    nll = length_nll(counts, torch.tensor([1, 2, 3]))
    assert torch.allclose(nll, -torch.log(torch.tensor([4 / 7, 1 / 7, 2 / 7], dtype=torch.float64)))
    values = torch.tensor([[2.0, 4.0], [6.0, 6.0]], dtype=torch.float64)
    out = summarise(values, torch.tensor([2, 3]), torch.tensor([1, 3]))
    assert out["nats_per_token"] == pytest.approx(9 / 5)
    assert out["bits_per_token"] == pytest.approx(9 / 5 / math.log(2))
    assert out["ppl_per_word"] == pytest.approx(math.exp(9 / 4))
    assert out["nats_per_word"] == pytest.approx(9 / 4)
    assert out["nats_per_sequence"] == pytest.approx(4.5)
    # the ratio estimator's s.e.: residuals y − R·x are (3 − 3.6, 6 − 5.4) per token and
    # (3 − 2.25, 6 − 6.75) per word; sqrt(n / (n − 1) · Σ residual²) / Σx
    assert out["nats_per_token_se"] == pytest.approx(math.sqrt(2 * 0.72) / 5)
    assert out["nats_per_word_se"] == pytest.approx(math.sqrt(2 * 1.125) / 4)
    assert summarise(values[:1], torch.tensor([0 + 1]))["nats_per_token_se"] == 0.0
