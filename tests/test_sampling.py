"""Samplers: exact distribution (chi-square), cached == ancestral, spindle reveal order."""

import math
from collections import Counter

import pytest
import torch

from corpora import toy
from diffusion import (
    SAMPLERS,
    AbsorbingDiffusion,
    NoiseSchedule,
    ParameterError,
    Sampler,
    filter_log_probs,
    make_sampler,
    sample,
    token_information,
)
from tests import dense_reference as ref
from tests.conftest import on_device
from tests.enumeration import L, TinyNet, make_diffusion, model_distribution


def chi_square_critical(df: int, z: float = 3.09) -> float:
    """Wilson–Hilferty approximation of the chi-square quantile; z = 3.09 is α = 0.001."""
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


@pytest.mark.parametrize(("lam", "T", "step"), [(0.0, 8, 1), (0.3, 8, 1), (0.3, 12, 3)])
def test_ancestral_samples_follow_the_exact_reverse_distribution(lam, T, step, device):
    """Pearson chi-square over all 36 outcomes, α = 0.001, 40,000 samples."""
    diffusion, net = make_diffusion(lam, T), TinyNet(1)
    exact = model_distribution(diffusion, net, step)
    n = 40000
    xT = torch.full((n, L), ref.MASK, device=device)
    target = torch.ones(n, L, dtype=torch.bool, device=device)
    out = sample(
        diffusion, on_device(net, device), xT, target, make_sampler("ancestral"), T, step,
        generator=torch.Generator(device).manual_seed(0),
    )  # fmt: skip
    assert out.x0.device == xT.device
    counts = Counter(map(tuple, out.x0.tolist()))
    assert set(counts) <= set(exact)
    cells = [x for x, p in exact.items() if p * n >= 5]
    stat = sum((counts.get(x, 0) - n * exact[x]) ** 2 / (n * exact[x]) for x in cells)
    assert stat < chi_square_critical(len(cells) - 1), stat


def test_chi_square_test_can_fail():
    """The same test rejects a sampler whose temperature is off (0.8 instead of 1)."""
    diffusion, net = make_diffusion(0.0, 8), TinyNet(1)
    exact = model_distribution(diffusion, net, 1)
    n = 40000
    out = sample(
        diffusion, net, torch.full((n, L), ref.MASK), torch.ones(n, L, dtype=torch.bool),
        make_sampler("ancestral", temperature=0.8), 8, generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    counts = Counter(map(tuple, out.x0.tolist()))
    cells = [x for x, p in exact.items() if p * n >= 5]
    stat = sum((counts.get(x, 0) - n * exact[x]) ** 2 / (n * exact[x]) for x in cells)
    assert stat > chi_square_critical(len(cells) - 1)


class Recorder:
    """Wraps a network; keeps every x_t it is called with."""

    def __init__(self, net):
        self.net, self.states = net, []

    def __call__(self, xt, u, masked):
        self.states.append(xt.clone())
        return self.net(xt, u, masked)


@pytest.mark.parametrize("lam", [0.0, 0.3])
def test_cached_equals_ancestral_with_one_call_per_distinct_state(lam, device):
    diffusion = make_diffusion(lam, 64)
    xT = torch.full((3, L), ref.MASK, device=device)
    target = torch.ones(3, L, dtype=torch.bool, device=device)
    ancestral = Recorder(on_device(TinyNet(2), device))
    a = sample(diffusion, ancestral, xT, target, make_sampler("ancestral"), 64, 1,
               generator=torch.Generator(device).manual_seed(5))  # fmt: skip
    c = sample(diffusion, on_device(TinyNet(2), device), xT, target, make_sampler("cached"), 64,
               1, generator=torch.Generator(device).manual_seed(5))  # fmt: skip
    assert torch.equal(a.x0, c.x0)
    distinct = len({tuple(s.flatten().tolist()) for s in ancestral.states})
    assert c.calls == distinct < a.calls


def test_spindle_reveals_frequent_tokens_first():
    """With a uniform stand-in network over the toy vocabulary, frequent words are written
    earlier in the reverse process (at larger t) with λ = 0.3, and not with λ = 0."""
    words = [*sorted(toy.WORD_CLASS), "to", "."]
    frequency = Counter(w for s in toy.split("test") for w in toy.words_of(s))
    counts = torch.tensor([frequency[w] for w in words] + [0])
    mask = len(words)
    h = token_information(counts)
    order = torch.argsort(h[:-1])
    rare, frequent = order[: len(words) // 3], order[-len(words) // 3 :]

    def uniform(xt, u, masked):
        logits = torch.zeros(int(masked.sum()), mask + 1)
        logits[:, mask] = -math.inf
        states.append(xt.clone())
        return logits.log_softmax(-1)

    gaps = {}
    for lam in (0.0, 0.3):
        diffusion = AbsorbingDiffusion(NoiseSchedule("mutual", 32, lam), mask, h)
        states = []
        n, length = 3000, 8
        out = sample(diffusion, uniform, torch.full((n, length), mask),
                     torch.ones(n, length, dtype=torch.bool), make_sampler("ancestral"), 32,
                     generator=torch.Generator().manual_seed(1))  # fmt: skip
        revealed_at = torch.zeros(n, length)
        for step, xt in zip(range(32, 0, -1), states, strict=False):
            revealed_at[(xt != mask) & (revealed_at == 0)] = step + 1
        revealed_at[revealed_at == 0] = 1  # written in the last step
        is_rare = torch.isin(out.x0, rare)
        is_frequent = torch.isin(out.x0, frequent)
        a, b = revealed_at[is_frequent], revealed_at[is_rare]
        se = math.sqrt(a.var() / len(a) + b.var() / len(b))
        gaps[lam] = (a.mean() - b.mean()) / se
    assert gaps[0.3] > 5, gaps
    assert abs(gaps[0.0]) < 4, gaps


def test_filters():
    log_probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log()
    top2 = filter_log_probs(log_probs, topk=2).exp()
    assert torch.allclose(top2, torch.tensor([[0.625, 0.375, 0, 0]], dtype=torch.float64))
    nucleus = filter_log_probs(log_probs, topp=0.7).exp()
    assert torch.allclose(nucleus, torch.tensor([[0.625, 0.375, 0, 0]], dtype=torch.float64))
    hot = filter_log_probs(log_probs, temperature=2.0).exp()
    expected = torch.tensor([0.5, 0.3, 0.15, 0.05], dtype=torch.float64).sqrt()
    assert torch.allclose(hot, (expected / expected.sum()).unsqueeze(0))


def test_sampler_registry_and_factory():
    assert list(SAMPLERS) == ["ancestral", "cached", "rowcache", "official"]
    for name, cls in SAMPLERS.items():
        assert issubclass(cls, Sampler) and cls.name == name
        sampler = make_sampler(name, 0.5, 3, 0.9)
        assert type(sampler) is cls
        assert (sampler.temperature, sampler.topk, sampler.topp) == (0.5, 3, 0.9)
        assert sampler.time_agnostic_only == (name in ("cached", "rowcache"))


@pytest.mark.parametrize(
    ("parameter", "kwargs"),
    [
        ("sampler", {"name": "greedy"}),
        ("temperature", {"temperature": 0.0}),
        ("temperature", {"temperature": -1.0}),
        ("temperature", {"temperature": math.inf}),
        ("temperature", {"temperature": math.nan}),
        ("topk", {"topk": -1}),
        ("topp", {"topp": 0.0}),
        ("topp", {"topp": 1.5}),
    ],
)
def test_bad_sampler_settings_name_the_parameter(parameter, kwargs):
    with pytest.raises(ParameterError) as info:
        make_sampler(**{"name": "ancestral", **kwargs})
    assert info.value.parameter == parameter
    assert str(info.value).startswith(parameter) and "--" not in str(info.value)


@pytest.mark.parametrize("step_size", [0, 3])
def test_sample_rejects_a_step_size_that_does_not_divide_num_steps(step_size):
    diffusion, target = make_diffusion(0.0, 8), torch.ones(1, L, dtype=torch.bool)
    with pytest.raises(ParameterError) as info:
        sample(diffusion, TinyNet(), torch.full((1, L), ref.MASK), target,
               make_sampler("ancestral"), 8, step_size)  # fmt: skip
    assert info.value.parameter == "step_size" and "--" not in str(info.value)


def _reference_step(h, lam, T, t, s, xs, log_probs_full, temperature, topk):
    """The reference code's sampling step for one sequence, written plainly: full (L, V)
    probabilities at every position, x̂0 = argmax, per-position keep probability of the step's
    target time t, the base schedule's transition t → s, temper and top-k over all of V.
    The 0.999 keep cap applies with the spindle on (the project's convention: at λ = 0 the
    process is the base schedule's). Returns the (L, V) distribution of x_t."""
    probs = log_probs_full.exp()
    x_hat = probs.argmax(-1)
    info = h.double()[x_hat]
    w = info - info.mean()
    base = [1.0]
    for beta in ref.betas("mutual", T):
        base.append(base[-1] * (1 - beta))
    if t == 0:
        at_t = probs.clone()  # q(x_0 | x̂0) is x̂0's distribution itself
    else:
        cap = 0.999 if lam > 0 else 1.0
        keep = (base[t] + lam * math.sin(math.pi * t / T) * w).clamp(0.0, cap).unsqueeze(-1)
        at_t = keep * probs
        at_t[:, ref.MASK] = 1 - keep[:, 0] + keep[:, 0] * probs[:, ref.MASK]
    out = torch.zeros_like(probs)
    for i in range(len(xs)):
        transition = torch.zeros(ref.V, dtype=torch.float64)  # q(x_s = xs_i | x_t = v)
        if xs[i] == ref.MASK:
            transition[:] = 1 - base[s] / base[t]
            transition[ref.MASK] = 1.0
        else:
            transition[xs[i]] = base[s] / base[t]
        logits = (at_t[i] * transition).log() / temperature
        if topk:
            logits[logits < logits.topk(topk).values[-1]] = -math.inf
        out[i] = logits.softmax(-1)
    return out


@pytest.mark.parametrize(("temperature", "topk"), [(1.0, 0), (0.7, 3)])
@pytest.mark.parametrize("lam", [0.0, 0.3])
def test_official_sampler_is_the_reference_step(lam, temperature, topk, device):
    """Total variation ≤ 1e-6 per position against the plain re-implementation, for steps
    that include the last one (t = 0), strides of 4 and 24, and the first one (t = 1) where the
    0.999 cap binds."""
    T = 1024
    diffusion = make_diffusion(lam, T, "official")
    sampler = make_sampler("official", temperature, topk)
    g = torch.Generator().manual_seed(3)
    xs = torch.tensor([[ref.MASK, 2, ref.MASK, ref.MASK], [4, ref.MASK, ref.MASK, 0]])
    target = torch.ones_like(xs, dtype=torch.bool)
    masked = xs == ref.MASK
    logits = torch.randn(*xs.shape, ref.V, generator=g, dtype=torch.float64) * 2
    logits[..., ref.MASK] = -math.inf
    log_probs = logits.log_softmax(-1)
    for t, s in [(0, 1), (0, 4), (1, 2), (3, 7), (500, 524), (1020, 1024)]:
        u_t = torch.full((2,), t / T, dtype=torch.float64)
        u_s = torch.full((2,), s / T, dtype=torch.float64)
        on = [x.to(device) for x in (xs, target, masked, log_probs[masked], u_t, u_s)]
        ours = sampler.posterior(diffusion, *on).cpu()
        full = log_probs.clone()
        full[~masked] = -math.inf  # a visible token is its own x0
        full[~masked, xs[~masked]] = 0.0
        dense = torch.cat([
            _reference_step(diffusion.h, lam, T, t, s, xs[b], full[b], temperature, topk)[
                masked[b]
            ]
            for b in range(2)
        ])  # fmt: skip
        tv = 0.5 * (ours - dense).abs().sum(-1)
        assert tv.max() <= 1e-6, (t, s, tv)


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_each_sampler_keeps_fixed_tokens_and_fills_the_target_on_the_data_device(name, device):
    """The whole reverse chain of every sampler on ``device``: the result stays there, the
    fixed positions keep their tokens and every target position ends unmasked."""
    diffusion = make_diffusion(0.3, 16, SAMPLERS[name].protocol.name)
    target = torch.tensor([[True, True], [False, True], [True, False]], device=device)
    xT = torch.tensor([[ref.MASK] * 2, [3, ref.MASK], [ref.MASK, 1]], device=device)
    out = sample(diffusion, on_device(TinyNet(5), device), xT, target, make_sampler(name), 16, 2,
                 generator=torch.Generator(device).manual_seed(0))  # fmt: skip
    assert out.x0.device == xT.device
    assert out.x0[~target].tolist() == [3, 1]
    assert not (out.x0 == ref.MASK).any() and 0 < out.calls <= 8


def test_official_sampler_without_spindle_is_the_previous_rule():
    """λ = 0: the exact protocol's posterior, [M] mass in the [M] column, filtered as a whole
    (what the official sampler did before it followed the reference's spindle term)."""
    diffusion = make_diffusion(0.0, 16, "official")
    xs = torch.tensor([[ref.MASK, 2, ref.MASK]])
    target, masked = torch.ones_like(xs, dtype=torch.bool), xs == ref.MASK
    log_probs = TinyNet(4).a[:2].clone()
    log_probs[:, ref.MASK] = -math.inf
    log_probs = log_probs.log_softmax(-1)
    u_t, u_s = torch.tensor([0.25]).double(), torch.tensor([0.5]).double()
    exact = make_diffusion(0.0, 16)
    probs = log_probs.exp()
    previous = probs * exact.model_rate(u_t, u_s, xs, target, masked, probs)
    previous[:, ref.MASK] = (1.0 - previous.sum(-1)).clamp_min(0.0)
    previous = filter_log_probs(previous.log(), 0.5, 2).exp()
    ours = make_sampler("official", 0.5, 2).posterior(
        diffusion, xs, target, masked, log_probs, u_t, u_s
    )
    assert torch.equal(ours, previous)
