"""experiments.variance's split of a paired standard error into the spread of the exact bound's
difference over sentences (the floor) and the Monte Carlo part, on synthetic differences with
known parts."""

import math

import pytest
import torch

from experiments.variance import floor_and_noise, sentence_differences


@pytest.mark.parametrize(("floor_sd", "noise_sd", "seeds"), [(3.0, 1.0, 2), (1.0, 4.0, 3)])
def test_floor_and_noise_recover_known_parts(floor_sd, noise_sd, seeds):
    """d_s,i = x_i + e_s,i with Var x = floor², Var e = noise²: each part's variance estimate
    has a relative s.e. of about √(2/n) (≤ √(2/(n(S−1))) for the noise); 5 of them bound it."""
    n, words = 20_000, 50_000
    g = torch.Generator().manual_seed(0)
    x = floor_sd * torch.randn(n, generator=g, dtype=torch.float64)
    d = [x + noise_sd * torch.randn(n, generator=g, dtype=torch.float64) for _ in range(seeds)]
    out = floor_and_noise(d, torch.full((n,), words / n, dtype=torch.float64))
    assert out["pair_seeds"] == seeds
    floor_var = out["floor_se"] ** 2 * words**2 / n
    noise_var = out["mc_se"] ** 2 * words**2 / n
    tolerance = 5 * math.sqrt(2 / n)
    assert noise_var == pytest.approx(noise_sd**2, rel=tolerance)
    # the floor is a difference of two estimates: its s.e. adds the noise's
    floor_tolerance = tolerance * (floor_sd**2 + noise_sd**2) / floor_sd**2
    assert floor_var == pytest.approx(floor_sd**2, rel=floor_tolerance)


def test_floor_and_noise_add_up_to_one_seeds_paired_variance():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(50, generator=g, dtype=torch.float64)
    d = [x + 0.3 * torch.randn(50, generator=g, dtype=torch.float64) for _ in range(2)]
    out = floor_and_noise(d, torch.full((50,), 8.0, dtype=torch.float64))
    one_seed = sum(x.var().item() for x in d) / 2 * 50 / 400**2
    assert out["floor_se"] ** 2 + out["mc_se"] ** 2 == pytest.approx(one_seed)


def test_sentence_differences_match_by_id():
    first = {"sentences": {"id": ["a", "b", "c"], "nats": [10.0, 20.0, 30.0]}}
    second = {"sentences": {"id": ["c", "a", "b"], "nats": [29.0, 12.0, 20.5]}}
    diff = sentence_differences(first, second)
    assert diff.tolist() == [-2.0, -0.5, 1.0]


def test_the_floor_is_the_ratio_estimators_where_lengths_differ():
    """Differences that grow with sentence length are no spread per word: with uneven lengths
    d_i = 0.1 · w_i (+ draws) has a floor near 0 per word, not the spread of d_i."""
    g = torch.Generator().manual_seed(2)
    units = torch.randint(2, 60, (400,), generator=g).to(torch.float64)
    d = [0.1 * units + 0.05 * torch.randn(400, generator=g, dtype=torch.float64)
         for _ in range(3)]  # fmt: skip
    out = floor_and_noise(d, units)
    fixed = math.sqrt(400 * d[0].var().item()) / units.sum().item()
    assert out["floor_se"] < fixed / 10
