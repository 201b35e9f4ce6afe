"""Paired, variance-reduced likelihood: keyed noise, the continuous bound's estimators against
the exact value (enumeration and quadrature), and the paired statistics."""

import math
import random

import numpy as np
import pytest
import torch

from corpora.collate import collate
from diffusion import BatchNoise, KeyedNoise, TimeProposal, continuous_nelbo
from diffusion.draws import PROPOSAL_EDGES, conditioned_mask
from diffusion.kl import continuous_integrand
from evaluation.bounds import Terms, sequence_bounds
from evaluation.sentences import noise_keys, sentence_ids
from evaluation.stats import betainc, t_quantile, t_two_sided_p
from tests import dense_reference as ref
from tests.enumeration import L, TinyNet, make_diffusion

EPS = 1e-3


class RowNet:
    """A fixed network whose output at a row depends on that row alone (any length, pad 0):
    logits = A[position mod 4] + B[Σ of the row's ids mod V]."""

    def __init__(self, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.a = torch.randn(4, ref.V, generator=g, dtype=torch.float64)
        self.b = torch.randn(ref.V, ref.V, generator=g, dtype=torch.float64)

    def __call__(self, xt, u, masked):
        rows, cols = masked.nonzero(as_tuple=True)
        logits = self.a[cols % 4] + self.b[xt.sum(-1)[rows] % ref.V]
        logits[:, ref.MASK] = -math.inf
        return logits.log_softmax(-1)


def skewed(*first: float) -> TimeProposal:
    """A proposal with the given densities on the first bins, uniform on the rest."""
    widths = np.diff(PROPOSAL_EDGES)
    head = float(np.dot(first, widths[: len(first)]))
    rest = (1.0 - head) / widths[len(first) :].sum()
    return TimeProposal(PROPOSAL_EDGES, (*first, *[rest] * (len(widths) - len(first))))


SKEWED = skewed(20.0, 10.0)
LATE = TimeProposal(PROPOSAL_EDGES, (*[0.05] * 9, (1 - 0.05 * 0.75) / 0.25))


def sentences(n: int = 40, seed: int = 0) -> list[list[int]]:
    """Token rows of lengths 1..9 over the ids 1..5 (0 is the padding)."""
    rng = random.Random(seed)
    return [[rng.randint(1, 5) for _ in range(rng.randint(1, 9))] for _ in range(n)]


class Recorder:
    """Wraps a network; records what each sentence was shown: {(sentence, call): (u, x_t)}."""

    def __init__(self, net, order: list[int], batch_size: int, calls_per_batch: int):
        self.net, self.order, self.batch_size, self.per_batch = (
            net,
            order,
            batch_size,
            calls_per_batch,
        )
        self.calls, self.seen = 0, {}

    def __call__(self, xt, u, masked):
        batch, call = divmod(self.calls, self.per_batch)
        for row in range(len(xt)):
            sentence = self.order[batch * self.batch_size + row]
            ids = xt[row][xt[row] != 0].tolist()
            self.seen[sentence, call] = (u[row].item(), ids)
        self.calls += 1
        return self.net(xt, u, masked)


def bound_all(rows, order, batch_size, bound, estimator="plain", proposal=None, lam=0.3):
    """Per-sentence bounds (in the original order) with keyed noise, batched as asked, and
    what the network was shown for each sentence."""
    from evaluation.bounds import calls_per_batch

    diffusion = make_diffusion(lam, 16)
    keys = noise_keys(7, sentence_ids(rows))
    shuffled = [rows[i] for i in order]
    batches = [collate(shuffled[i : i + batch_size], 0) for i in range(0, len(rows), batch_size)]
    per_batch = calls_per_batch(bound, 16, 2, 3, estimator)
    recorder = Recorder(RowNet(), order, batch_size, per_batch)
    values, _ = sequence_bounds(
        diffusion, recorder, batches, bound, 2, 3, seed=0, keys=[keys[i] for i in order],
        estimator=estimator, proposal=proposal,
    )  # fmt: skip
    out = torch.empty_like(values)
    out[torch.tensor(order)] = values
    return out, recorder.seen


@pytest.mark.parametrize(
    ("bound", "estimator"),
    [("discrete", "plain"), ("continuous", "plain"), ("continuous", "conditioned"),
     ("continuous", "importance"), ("continuous", "antithetic"),
     ("continuous", "rao_blackwell_loo")],
)  # fmt: skip
def test_keyed_noise_ignores_batching_order_and_padding(bound, estimator):
    """A sentence's draws depend on its id and the seed only: batch sizes 1, 7 and 32 and a
    shuffled order give the same per-sentence bound."""
    rows = sentences()
    proposal = skewed(2.0) if estimator == "importance" else None
    lam = 0.0 if estimator.startswith("rao_blackwell") else 0.3  # needs no spindle
    reference, shown = bound_all(rows, list(range(len(rows))), 1, bound, estimator, proposal,
                                 lam)  # fmt: skip
    shuffled = list(range(len(rows)))
    random.Random(3).shuffle(shuffled)
    for batch_size, order in [(7, list(range(len(rows)))), (32, shuffled), (7, shuffled)]:
        again, shown_again = bound_all(rows, order, batch_size, bound, estimator, proposal, lam)
        assert shown_again == shown  # the same times and masks, exactly
        assert torch.allclose(again, reference, rtol=1e-6, atol=0)  # float32 sums aside
    other_seed = sequence_bounds(
        make_diffusion(lam, 16), RowNet(), [collate(rows, 0)], bound, 2, 3,
        keys=noise_keys(8, sentence_ids(rows)), estimator=estimator, proposal=proposal,
    )[0]  # fmt: skip
    assert not torch.allclose(other_seed, reference)


def test_keyed_noise_layout():
    """Offset, picks, each call's uniforms at the target positions, then each call's time,
    from the key alone."""
    target = torch.tensor([[True, True, False], [False, True, True]])
    noise = KeyedNoise([11, 12], target, calls=2)
    stream = torch.rand(1 + 2 + 2 * 2 + 2, generator=torch.Generator().manual_seed(12),
                        dtype=torch.float64)  # fmt: skip
    assert noise.offset()[1] == stream[0]
    assert torch.equal(noise.pick(1)[1:], stream[2:3])
    assert torch.equal(noise.mask(0)[1, 1:], stream[3:5])
    assert torch.equal(noise.mask(1)[1, 1:], stream[5:7])
    assert noise.mask(1)[1, 0] == 1.0 and noise.mask(0)[0, 2] == 1.0
    assert noise.time(0)[1] == stream[7] and noise.time(1)[1] == stream[8]  # times come last


def test_batch_noise_returns_one_draw_per_call_and_antithetic_mirrors_it():
    """BatchNoise draws a call's uniforms once (in first-request order) and returns them again
    for the same call, so the antithetic estimator's odd draws mirror the even ones' mask
    uniforms instead of drawing new ones (it drew afresh before: not antithetic)."""
    generator = torch.Generator().manual_seed(0)
    noise = BatchNoise(2, 3, generator, "cpu")
    first = noise.mask(0)
    assert torch.equal(noise.mask(0), first) and not torch.equal(noise.mask(1), first)
    expected = torch.rand(2, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert torch.equal(first, expected)
    diffusion = make_diffusion(0.0, 64)
    x0 = torch.tensor([[1, 2, 3][:L]])
    seen = []

    def net(xt, u, masked):
        seen.append(u.clone())
        return TinyNet(0)(xt, u, masked)

    noise = BatchNoise(1, x0.shape[1], torch.Generator().manual_seed(1), "cpu")
    continuous_nelbo(diffusion, net, x0, torch.ones_like(x0, dtype=torch.bool), 4,
                     noise=noise, estimator="antithetic")  # fmt: skip
    drawn = {call for stream, call in noise._drawn if stream == "mask"}
    assert {0, 2} <= drawn and not {1, 3} & drawn  # odd draws reuse 1 − U of the even ones
    assert (seen[0] + seen[1]).item() == pytest.approx(1.0 + EPS)  # times v and 1 − v


def test_sentence_ids_hash_the_tokens_and_keep_the_index():
    ids = sentence_ids([[1, 2], [1, 2], [2, 1]])
    assert [i.split(":")[0] for i in ids] == ["0", "1", "2"]
    assert ids[0].split(":")[1] == ids[1].split(":")[1] != ids[2].split(":")[1]
    assert len(set(noise_keys(0, ids))) == 3
    assert noise_keys(0, ids) != noise_keys(1, ids)


def test_conditioned_mask_has_the_conditional_law():
    """P(pattern | at least one masked) by enumeration against the draws' frequencies."""
    keep = torch.tensor([[0.7, 0.4, 0.9]], dtype=torch.float64)
    target = torch.tensor([[True, True, True]])
    n = 60_000
    g = torch.Generator().manual_seed(0)
    masked, p_any = conditioned_mask(
        keep.expand(n, 3), target.expand(n, 3), torch.rand(n, generator=g, dtype=torch.float64),
        torch.rand(n, 3, generator=g, dtype=torch.float64),
    )  # fmt: skip
    assert p_any[0].item() == pytest.approx(1 - 0.7 * 0.4 * 0.9)
    assert masked.any(-1).all()
    codes = (masked.long() * torch.tensor([1, 2, 4])).sum(-1)
    counts = torch.bincount(codes, minlength=8)
    for code in range(1, 8):
        bits = [(code >> i) & 1 for i in range(3)]
        p = math.prod((1 - k) if b else k for k, b in zip(keep[0].tolist(), bits, strict=True))
        p /= p_any[0].item()
        se = math.sqrt(p * (1 - p) / n)
        assert abs(counts[code].item() / n - p) < 4 * se


def exact_continuous(diffusion, net, x0: torch.Tensor, nodes: int = 60, eps: float = EPS) -> float:
    """The continuous NELBO with the reconstruction step at eps, exactly: the 2^L masking
    patterns enumerated at each time, Gauss–Legendre quadrature over u in [eps, 1]."""
    target = torch.ones(1, L, dtype=torch.bool)
    points, weights = np.polynomial.legendre.leggauss(nodes)

    def expected(u_value: float, reconstruction: bool) -> float:
        u = torch.tensor([u_value], dtype=torch.float64)
        keep = diffusion.alpha_bar(u, diffusion.centred(x0, target), discrete=False)
        keep = keep.expand(1, L)[0]
        total = 0.0
        for code in range(1, 2**L):
            masked = torch.tensor([[(code >> i) & 1 == 1 for i in range(L)]])
            prob = math.prod((1 - keep[i].item()) if masked[0, i] else keep[i].item()
                             for i in range(L))  # fmt: skip
            xt = x0.masked_fill(masked, ref.MASK)
            log_probs = net(xt, u, masked)
            if reconstruction:
                value = -log_probs.gather(-1, x0[masked].unsqueeze(-1)).sum().item()
            else:
                value = (
                    continuous_integrand(diffusion, u, x0, xt, target, masked, log_probs)
                    .sum()
                    .item()
                )
            total += prob * value
        return total

    integral = (
        sum(
            w * expected(eps + (1 - eps) * (p + 1) / 2, False)
            for p, w in zip(points, weights, strict=True)
        )
        * (1 - eps)
        / 2
    )
    return integral + expected(eps, True)


def z_score(diffusion, net, x0, estimator, proposal=None, weightless=False, n=6000, eps=EPS):
    """(mean of n one-draw-per-sentence estimates − exact) / its standard error."""
    exact = exact_continuous(diffusion, net, x0, eps=eps)
    proposal_used = proposal
    if weightless:  # draws from the proposal without dividing by its density: biased
        proposal_used = BiasedProposal(proposal.edges, proposal.density)
    draws = continuous_nelbo(
        diffusion, net, x0.expand(n, L), torch.ones(n, L, dtype=torch.bool), 2,
        torch.Generator().manual_seed(5), eps=eps, estimator=estimator, proposal=proposal_used,
    ).mean(-1)  # fmt: skip
    return (draws.mean().item() - exact) / (draws.std().item() / math.sqrt(n))


class BiasedProposal(TimeProposal):
    """A deliberately wrong estimator: samples the proposal but weighs every draw by 1."""

    def sample(self, y):
        v, weight = super().sample(y)
        return v, torch.ones_like(weight)


@pytest.mark.parametrize("lam", [0.0, 0.3])
@pytest.mark.parametrize(
    ("estimator", "proposal"),
    [("plain", None), ("conditioned", None), ("importance", SKEWED), ("importance", LATE),
     ("antithetic", None)],
)  # fmt: skip
def test_estimators_are_unbiased(lam, estimator, proposal):
    """Every estimator averages to the exact continuous bound within 3 standard errors."""
    diffusion, net = make_diffusion(lam, 1024), TinyNet(2)
    for ids in [(0, 3), (4, 1)]:
        assert abs(z_score(diffusion, net, torch.tensor([ids]), estimator, proposal)) < 3


def test_the_unbiasedness_test_catches_a_biased_proposal():
    """The same test fails for importance draws that are not divided by their density."""
    diffusion, net = make_diffusion(0.3, 1024), TinyNet(2)
    z = z_score(diffusion, net, torch.tensor([[0, 3]]), "importance", LATE, weightless=True)
    assert abs(z) > 3


def test_fitted_proposal_follows_the_second_moment():
    """Bins with a larger E[f²] get a larger density, never below the floor, integrating to 1."""
    v = torch.tensor([0.001, 0.002, 0.3, 0.6, 0.9], dtype=torch.float64)
    values = torch.tensor([10.0, 10.0, 1.0, 1.0, 1.0], dtype=torch.float64)
    proposal = TimeProposal.fit(v, values, PROPOSAL_EDGES, floor=0.2)
    widths = np.diff(PROPOSAL_EDGES)
    assert float(np.dot(proposal.density, widths)) == pytest.approx(1.0)
    norm = 10 / 256 + 3 * 0.25  # ∫ √E[f² | bin]: 10 on [0, 1/256), 1 on the last three bins
    assert proposal.density[0] == pytest.approx(0.8 * 10 / norm + 0.2)
    assert proposal.density[-1] == pytest.approx(0.8 / norm + 0.2)
    assert proposal.density[3] == pytest.approx(0.2)  # no pilot draw there: the floor
    y = (torch.arange(20_000, dtype=torch.float64) + 0.5) / 20_000
    times, weights = proposal.sample(y)
    assert torch.all(times[1:] >= times[:-1])
    edges = torch.tensor(PROPOSAL_EDGES, dtype=torch.float64)
    bins = torch.bucketize(times, edges[1:-1], right=True)
    share = torch.bincount(bins, minlength=len(widths)).double() / len(y)
    assert torch.allclose(share, torch.tensor(proposal.density) * edges.diff(), atol=1e-4)
    assert torch.allclose(weights, 1.0 / torch.tensor(proposal.density, dtype=torch.float64)[bins])
    assert TimeProposal.from_dict(proposal.as_dict()) == proposal


def test_student_t_against_tables():
    assert t_two_sided_p(2.228, 10) == pytest.approx(0.05, abs=2e-4)
    assert t_two_sided_p(12.706, 1) == pytest.approx(0.05, abs=2e-5)
    assert t_two_sided_p(0.0, 5) == pytest.approx(1.0)
    assert t_quantile(0.95, 127) == pytest.approx(1.9788, abs=1e-4)
    assert t_quantile(0.99, 20) == pytest.approx(2.845, abs=1e-3)
    assert betainc(2.0, 3.0, 0.4) == pytest.approx(0.5248, abs=1e-4)


@pytest.mark.parametrize("estimator", ["plain", "conditioned", "importance", "antithetic"])
def test_terms_add_up_to_the_bound_for_every_estimator(estimator):
    """The t buckets plus the reconstruction are the same draws as the bound itself."""
    rows = sentences(20)
    terms = Terms()
    values, _ = sequence_bounds(
        make_diffusion(0.3, 16), RowNet(), [collate(rows, 0)], "continuous", 1, 4,
        terms=terms, keys=noise_keys(1, sentence_ids(rows)), estimator=estimator,
        proposal=skewed(3.0, 2.0) if estimator == "importance" else None,
    )  # fmt: skip
    total = terms.nats.sum().item() + terms.reconstruction
    assert total == pytest.approx(values.mean(-1).sum().item(), rel=1e-9)
