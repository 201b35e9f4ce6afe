"""The per-row cache (``rowcache``): the same samples as ``ancestral`` for the same seed, and
one row forward per distinct state of a row that still has masked positions (≤ 1 + length).

"Identical" here is exact equality of the sampled ids, which the tests assert. It is
guaranteed when the network's output for a row does not depend on the other rows of its
batch bit for bit (the stand-in networks below). A real network computes a row in a smaller
batch with a different matrix-multiply blocking, which can change the last bit of its
float32 log-probabilities (the tiny BERT below: ≤ 1e-6); a draw then differs only where its
uniform falls within that rounding of a CDF boundary or of a reveal rate, about 1e-7 per draw,
and the tests with the tiny BERT and fixed seeds see none.
"""

import itertools
import math

import pytest
import torch

from diffusion import (
    AbsorbingDiffusion,
    GuidedDenoiser,
    NoiseSchedule,
    make_sampler,
    sample,
    token_information,
)
from generation.config import SamplingConfig
from generation.seq2seq import conditional_batch, generate_candidates
from generation.unconditional import generate
from models import DiffusionConfig, build_model
from models.checkpoint import Checkpoint
from tests import dense_reference as ref
from tests.conftest import on_device
from tests.enumeration import TinyNet, make_diffusion

V = ref.V  # 7 tokens, [M] = 6


class RowNet:
    """A fixed row-wise network on sequences of any length: logits at position i =
    A[i] + B[x at i − 1] + C[x at i + 1] (padding = token 5 at the edges), float64."""

    def __init__(self, seed: int = 0, width: int = 8):
        g = torch.Generator().manual_seed(seed)
        self.a = torch.randn(width, V, generator=g, dtype=torch.float64)
        self.b = torch.randn(V, V, generator=g, dtype=torch.float64)
        self.c = torch.randn(V, V, generator=g, dtype=torch.float64)

    def __call__(self, xt, u, masked):
        padded = torch.nn.functional.pad(xt, (1, 1), value=5)
        rows, cols = masked.nonzero(as_tuple=True)
        logits = self.a[cols] + self.b[padded[rows, cols]] + self.c[padded[rows, cols + 2]]
        logits[:, ref.MASK] = -math.inf
        return logits.log_softmax(-1)


class Rows:
    """Wraps a network; counts the forwards of every row of the full batch by state, through
    the ``select_rows`` hook (so it also sees which rows a sub-batch holds)."""

    def __init__(self, net, rows=None, log=None):
        self.net, self.rows = net, rows
        self.log = [] if log is None else log

    def select_rows(self, rows):
        return Rows(self.net, rows, self.log)

    def __call__(self, xt, u, masked):
        rows = range(xt.shape[0]) if self.rows is None else self.rows.tolist()
        self.log += [(row, tuple(x.tolist())) for row, x in zip(rows, xt, strict=True)]
        return self.net(xt, u, masked)


def run(name, diffusion, net, xT, target, steps, step_size, seed, **filters):
    generator = torch.Generator(xT.device).manual_seed(seed)
    return sample(diffusion, net, xT, target, make_sampler(name, **filters), steps, step_size,
                  generator=generator, record_history=True)  # fmt: skip


def assert_same(a, b):
    assert torch.equal(a.x0, b.x0)
    assert [s for s, _, _ in a.history] == [s for s, _, _ in b.history]
    for (_, x, m), (_, y, n) in zip(a.history, b.history, strict=True):
        assert torch.equal(m, n)
        assert torch.equal(x, y)


def ragged(batch: int, width: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of lengths 1..width (padding = token 5 after them), all target positions [M]."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, width + 1, (batch,), generator=g)
    lengths[0] = width
    target = torch.arange(width) < lengths.unsqueeze(-1)
    return torch.full((batch, width), 5).masked_fill(target, ref.MASK), target


@pytest.mark.parametrize("lam", [0.0, 0.3])
@pytest.mark.parametrize(("steps", "step_size"), [(16, 1), (64, 2), (60, 3)])
@pytest.mark.parametrize("batch", [1, 3, 8])
def test_rowcache_equals_ancestral(lam, steps, step_size, batch, device):
    diffusion = make_diffusion(lam, steps)
    xT, target = (x.to(device) for x in ragged(batch, 8, batch))
    for seed in range(3):
        net = on_device(RowNet(seed), device)
        a = run("ancestral", diffusion, net, xT, target, steps, step_size, seed)
        r = run("rowcache", diffusion, net, xT, target, steps, step_size, seed)
        assert_same(a, r)
        assert r.x0.device == xT.device
        assert r.calls <= a.calls and r.row_forwards < a.row_forwards == a.calls * batch


@pytest.mark.parametrize(
    "filters", [{"temperature": 0.7}, {"topk": 3}, {"topp": 0.8}, {"temperature": 1.3, "topk": 4}]
)
@pytest.mark.parametrize("lam", [0.0, 0.3])
def test_rowcache_equals_ancestral_with_filters(lam, filters):
    diffusion = make_diffusion(lam, 32)
    xT, target = ragged(5, 8, 1)
    for seed in range(2):
        a = run("ancestral", diffusion, RowNet(seed), xT, target, 32, 1, seed, **filters)
        r = run("rowcache", diffusion, RowNet(seed), xT, target, 32, 1, seed, **filters)
        assert_same(a, r)


def test_rowcache_equals_ancestral_on_the_enumeration_network():
    diffusion = make_diffusion(0.3, 64)
    xT, target = torch.full((40, 2), ref.MASK), torch.ones(40, 2, dtype=torch.bool)
    a = run("ancestral", diffusion, TinyNet(2), xT, target, 64, 1, 5)
    r = run("rowcache", diffusion, TinyNet(2), xT, target, 64, 1, 5)
    assert_same(a, r)
    assert r.row_forwards <= 40 * 2


def test_rowcache_keeps_fixed_tokens_and_fills_a_window():
    """Semi-autoregressive windows at the level of ``sample``: the first half of each row is
    fixed text, only the second half is generated."""
    diffusion = make_diffusion(0.3, 24)
    g = torch.Generator().manual_seed(0)
    xT = torch.randint(0, ref.MASK, (4, 8), generator=g)
    target = torch.zeros(4, 8, dtype=torch.bool)
    target[:, 4:] = True
    xT = xT.masked_fill(target, ref.MASK)
    a = run("ancestral", diffusion, RowNet(1), xT, target, 24, 2, 3)
    r = run("rowcache", diffusion, RowNet(1), xT, target, 24, 2, 3)
    assert_same(a, r)
    assert torch.equal(r.x0[~target], xT[~target]) and not (r.x0 == ref.MASK).any()


@pytest.mark.parametrize("lam", [0.0, 0.3])
@pytest.mark.parametrize("steps", [8, 64, 512])
def test_one_row_forward_per_distinct_masked_state(lam, steps):
    """Each row is forwarded once per distinct state that still has a masked position: at
    most 1 + (steps in which it revealed something) ≤ 1 + its length, at any T'."""
    diffusion = make_diffusion(lam, steps)
    xT, target = ragged(6, 8, 2)
    net, states = Rows(RowNet(0)), []

    def recorder(xt, u, masked):  # ancestral calls the network at every step: its states
        states.append(xt.clone())
        return RowNet(0)(xt, u, masked)

    r = run("rowcache", diffusion, net, xT, target, steps, 1, 0)
    a = run("ancestral", diffusion, recorder, xT, target, steps, 1, 0)
    assert_same(a, r)
    assert len(net.log) == len(set(net.log)) == r.row_forwards  # no state forwarded twice
    states.append(a.x0)
    for row in range(6):
        forwarded = {state for r_, state in net.log if r_ == row}
        assert forwarded == {tuple(s[row].tolist()) for s in states if (s[row] == ref.MASK).any()}
        revealing_steps = sum(
            int(((s0[row] == ref.MASK) & (s1[row] != ref.MASK)).any())
            for s0, s1 in itertools.pairwise(states)
        )
        assert len(forwarded) <= 1 + revealing_steps <= 1 + int(target[row].sum())
    assert r.row_forwards <= int(target.sum()) + 6


@pytest.mark.parametrize("weight", [0.0, 1.5])
def test_guided_sub_batches_carry_their_source_masks(weight):
    """Seq2seq rows: a source (fixed), a target region; guidance doubles each sub-batch with
    the sources masked, row by row."""
    diffusion = make_diffusion(0.0, 20)
    sources = [[0, 1, 2, 3], [4], [2, 0], [1, 1, 1]]
    xT, target = conditional_batch(sources, 4, ref.MASK, 5)
    source_mask = (xT != 5) & ~target
    sizes = []

    def net(xt, u, masked):
        sizes.append(xt.shape[0])
        return RowNet(3)(xt, u, masked)

    outs = {}
    for name in ("ancestral", "rowcache"):
        guided = GuidedDenoiser(net, source_mask, ref.MASK, weight)
        outs[name] = run(name, diffusion, guided, xT, target, 20, 1, 7)
    assert_same(outs["ancestral"], outs["rowcache"])
    assert torch.equal(outs["rowcache"].x0[~target], xT[~target])
    factor = 2 if weight else 1
    assert sum(sizes) == factor * (outs["ancestral"].row_forwards + outs["rowcache"].row_forwards)
    assert outs["rowcache"].row_forwards <= int(target.sum()) + len(sources)


# The tiny BERT of the other tests: the real network, its padding and [CLS] x [SEP] framing.


@pytest.fixture(scope="module")
def tiny_checkpoint(tiny_bert, tokenizer, tmp_path_factory):
    def make(task=None, lam=0.0):
        torch.manual_seed(0)
        config = DiffusionConfig(num_steps=32, max_length=24, word_freq_lambda=lam, task=task,
                                 max_target_length=6 if task else 0)  # fmt: skip
        model = build_model(str(tiny_bert), tokenizer, config, from_scratch=True).eval()
        counts = torch.randint(1, 1000, (len(tokenizer),), generator=torch.Generator())
        lengths = torch.tensor([0, 1, 3, 2, 4, 1, 2, 3, 1])
        return Checkpoint(model, tokenizer, config, counts, tmp_path_factory.mktemp("ckpt"),
                          lengths)  # fmt: skip

    return make


def test_the_tiny_bert_is_row_independent(tiny_checkpoint):
    """A row's output does not depend on its batch up to float rounding (padding and the
    [CLS] x [SEP] framing are per row)."""
    model = tiny_checkpoint().model
    g = torch.Generator().manual_seed(0)
    xt = torch.randint(1000, 2000, (5, 7), generator=g)
    xt[2, 4:] = 0
    masked = (torch.rand(5, 7, generator=g) < 0.5) & (xt != 0)
    xt = xt.masked_fill(masked, 103)
    u = torch.full((5,), 0.5, dtype=torch.float64)
    with torch.no_grad():
        full = model(xt, u, masked).split(masked.sum(-1).tolist())
        for rows in ([0], [2], [1, 3], [4, 2, 0]):
            sub = model(xt[rows], u[rows], masked[rows]).split(masked[rows].sum(-1).tolist())
            for row, part in zip(rows, sub, strict=True):
                finite = part.isfinite()
                assert torch.equal(finite, full[row].isfinite())
                assert torch.allclose(part[finite], full[row][finite], rtol=0, atol=1e-5)


@pytest.mark.parametrize(("lam", "windows", "length"), [(0.0, 1, 0), (0.3, 1, 0), (0.3, 3, 4)])
def test_generate_rowcache_equals_ancestral(tiny_checkpoint, lam, windows, length, device):
    """Batches of 3 with a partial last batch, lengths from the histogram or semi-AR windows."""
    ckpt = tiny_checkpoint(lam=lam)
    ckpt.model.to(device)
    outs = {}
    for name in ("ancestral", "rowcache"):
        sampling = SamplingConfig(sampler=name, sampling_steps=16, step_size=2, seed=4)
        outs[name] = generate(ckpt, 7, length, 3, sampling, windows)
    assert outs["ancestral"].ids == outs["rowcache"].ids
    a, r = outs["ancestral"], outs["rowcache"]
    assert r.calls <= a.calls and r.row_forwards < a.row_forwards
    tokens = sum(len(ids) for ids in r.ids)  # every token of a sample is generated once
    assert r.row_forwards <= tokens + 7 * windows


@pytest.mark.parametrize("weight", [0.0, 2.0])
def test_seq2seq_mbr_candidates_rowcache_equals_ancestral(tiny_checkpoint, weight, device):
    ckpt = tiny_checkpoint(task="toy")
    ckpt.model.to(device)
    sources = [[2023, 2003, 1037, 3899], [1996], [2009, 2001]]
    outs = {}
    for name in ("ancestral", "rowcache"):
        sampling = SamplingConfig(sampler=name, sampling_steps=12, seed=2)
        outs[name] = generate_candidates(ckpt, sources, 3, 4, sampling, weight, 6)
    a, r = outs["ancestral"], outs["rowcache"]
    assert a.ids == r.ids
    assert r.calls <= a.calls and r.row_forwards < a.row_forwards
    assert r.row_forwards <= 9 * (1 + 6)


def test_rowcache_refuses_a_time_conditioned_checkpoint():
    from common.errors import UsageError

    with pytest.raises(UsageError, match="time-agnostic"):
        SamplingConfig(sampler="rowcache").check_model("layerwise")


def test_spindle_rates_from_the_cache_are_the_process_rates():
    """The cached expected information is exactly what the full probabilities give, so the
    reveal rates of ``rowcache`` and ``ancestral`` are equal bit for bit."""
    from diffusion import RowCache

    counts = torch.tensor([500, 3, 60, 9, 200, 1, 0])
    diffusion = AbsorbingDiffusion(NoiseSchedule("mutual", 64, 0.3), ref.MASK,
                                   token_information(counts))  # fmt: skip
    xT, target = ragged(4, 8, 3)
    g = torch.Generator().manual_seed(0)
    xs = torch.where(torch.rand(4, 8, generator=g) < 0.4, 2, xT)
    masked = (xs == ref.MASK) & target
    sampler = make_sampler("rowcache", temperature=0.9)
    cache = RowCache(sampler, diffusion, target)
    net = RowNet(2)
    cache.update(net, xs, torch.full((4,), 0.5, dtype=torch.float64), masked)
    probs = sampler.filtered_probs(net(xs, None, masked))
    candidate = torch.multinomial(probs, 1, generator=g).squeeze(-1)
    u_t, u_s = (
        torch.full((4,), 0.3, dtype=torch.float64),
        torch.full((4,), 0.5, dtype=torch.float64),
    )
    expected = diffusion.expected_information(probs)
    assert torch.equal(cache.expected_at(masked), expected)
    ours = diffusion.candidate_rate(u_t, u_s, xs, target, masked, cache.expected_at(masked),
                                    candidate)  # fmt: skip
    theirs = diffusion.candidate_rate(u_t, u_s, xs, target, masked, expected, candidate)
    assert torch.equal(ours, theirs)


def test_auto_picks_rowcache_for_a_time_agnostic_checkpoint():
    auto = SamplingConfig(sampler="auto", temperature=0.8)
    assert auto.for_model("none") == SamplingConfig(sampler="rowcache", temperature=0.8)
    for timestep in ("layerwise", "token"):
        auto.check_model(timestep)  # never refused
        assert auto.for_model(timestep).sampler == "ancestral"
    assert SamplingConfig(sampler="cached").for_model("none").sampler == "cached"
    with pytest.raises(ValueError, match="temperature"):
        SamplingConfig(sampler="auto", temperature=0.0)


def test_predict_sidecar_reports_row_forwards(tiny_checkpoint, tmp_path):
    import json

    import predict
    from models.checkpoint import save_checkpoint

    ckpt = tiny_checkpoint()
    folder = tmp_path / "ckpt"
    save_checkpoint(folder, ckpt.model, ckpt.tokenizer, ckpt.config, ckpt.counts,
                    lengths=ckpt.lengths)  # fmt: skip
    meta = {}
    for name in ("ancestral", "rowcache", "auto"):
        out = tmp_path / f"{name}.txt"
        predict.main(["--checkpoint", str(folder), "--num_samples", "5", "--batch_size", "2",
                      "--length", "5", "--num_steps", "16", "--seed", "1", "--device", "cpu",
                      "--sampler", name, "--output", str(out)])  # fmt: skip
        meta[name] = json.loads(out.with_name(out.name + ".json").read_text())
        meta[name]["text"] = out.read_text()
    a, r, auto = meta["ancestral"], meta["rowcache"], meta["auto"]
    assert a["text"] == r["text"] == auto["text"]
    assert auto["sampler_used"] == "rowcache" and a["sampler_used"] == "ancestral"
    assert r["row_forwards_per_sample"] <= 1 + 5 < a["row_forwards_per_sample"]
    assert r["row_forwards"] == auto["row_forwards"] == 5 * r["row_forwards_per_sample"]
