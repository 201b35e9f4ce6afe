"""The continuous bound's estimator registry (``diffusion.estimators``): each estimator's
declared network calls and refusals match what it does, and a new estimator is one subclass
added to ``ESTIMATORS`` (it is then unbiased, counted and refused like the others)."""

import pytest
import torch

from diffusion import (
    ESTIMATORS,
    ContinuousEstimator,
    ParameterError,
    TimeProposal,
    continuous_draws,
    continuous_nelbo,
    estimator_help,
    make_estimator,
)
from diffusion.draws import stratified
from diffusion.estimators import TIME_AGNOSTIC, Conditioned, RaoBlackwell, network_calls
from tests.enumeration import TinyNet, make_diffusion
from tests.test_paired import RowNet, z_score


class CountingNet(RowNet):
    """``RowNet`` that counts its calls."""

    calls = 0

    def __call__(self, xt, u, masked):
        self.calls += 1
        return super().__call__(xt, u, masked)


@pytest.mark.parametrize("name", list(ESTIMATORS))
@pytest.mark.parametrize("draws", [1, 4])
def test_each_estimator_makes_the_calls_it_declares(name, draws):
    net = CountingNet()
    x0 = torch.randint(0, 5, (3, 6), generator=torch.Generator().manual_seed(0))
    target = torch.ones(3, 6, dtype=torch.bool)
    continuous_draws(make_diffusion(0.0, 64), net, x0, target, draws,
                     torch.Generator().manual_seed(1), estimator=name)  # fmt: skip
    assert net.calls == network_calls(name, draws)
    assert ESTIMATORS[name].name == name and issubclass(ESTIMATORS[name], ContinuousEstimator)
    assert f"{name} (" in estimator_help()


def test_the_derived_lists_follow_the_classes():
    assert set(TIME_AGNOSTIC) == {"rao_blackwell", "rao_blackwell_cv", "rao_blackwell_loo"}
    assert [n for n, c in ESTIMATORS.items() if c.uses_proposal] == ["importance"]
    with pytest.raises(ParameterError, match="unknown: choose one of plain, conditioned"):
        make_estimator("nope")
    skewed = TimeProposal((0.0, 0.5, 1.0), (1.5, 0.5))
    assert make_estimator("importance", skewed).proposal == skewed
    assert make_estimator("conditioned", skewed).proposal == TimeProposal.uniform()


class Reversed(Conditioned):
    """A new estimator for the test: ``conditioned`` with its stratified times in reverse
    order (the same set of times, so still unbiased)."""

    name = "reversed_test"
    summary = "conditioned, times in reverse order"

    def uniform(self, batch, k):
        return stratified(batch.offsets, batch.mc_samples - 1 - k, batch.mc_samples)


class TimeBlind(RaoBlackwell):
    name = "time_blind_test"
    summary = "rao_blackwell under another name"


def test_a_new_estimator_is_one_subclass(monkeypatch):
    monkeypatch.setitem(ESTIMATORS, Reversed.name, Reversed)
    monkeypatch.setitem(ESTIMATORS, TimeBlind.name, TimeBlind)
    diffusion, net = make_diffusion(0.3, 1024), TinyNet(2)
    for ids in [(0, 3), (4, 1)]:
        assert abs(z_score(diffusion, net, torch.tensor([ids]), Reversed.name)) < 3
    x0, target = torch.tensor([[0, 3]]), torch.ones(1, 2, dtype=torch.bool)
    forward = continuous_draws(diffusion, net, x0, target, 4, torch.Generator().manual_seed(3),
                               estimator="conditioned")  # fmt: skip
    backward = continuous_draws(diffusion, net, x0, target, 4, torch.Generator().manual_seed(3),
                                estimator=Reversed.name)  # fmt: skip
    assert torch.equal(forward.times.flip(-1), backward.times)
    assert network_calls(TimeBlind.name, 4) == 4
    assert "reversed_test (conditioned, times in reverse order)" in estimator_help()
    with pytest.raises(ParameterError, match=r"time_blind_test.*candidate token"):
        continuous_nelbo(diffusion, net, x0, target, 2, estimator=TimeBlind.name)
