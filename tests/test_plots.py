"""Pictures: each is written, and the data it draws is the data of its source file."""

from __future__ import annotations

import pytest
import torch

from evaluation.bounds import Terms, sequence_bounds, summarise
from tests.enumeration import L, TinyNet, make_diffusion


@pytest.mark.parametrize(("bound", "lam"), [("discrete", 0.3), ("continuous", 0.3),
                                            ("continuous", 0.0)])  # fmt: skip
def test_the_terms_add_up_to_the_bound(bound, lam):
    """The per-t export of compute_elbo.py --json splits the very draws that are totalled."""
    diffusion = make_diffusion(lam, 16)
    x0 = torch.tensor([[2, 0], [5, 1], [4, 4]]).repeat(20, 1)
    target = torch.ones_like(x0, dtype=torch.bool)
    target[::3, 1] = False
    terms = Terms()
    values, tokens = sequence_bounds(
        diffusion, TinyNet(), [(x0[:30], target[:30]), (x0[30:], target[30:])], bound, 2, 3,
        seed=0, terms=terms,
    )  # fmt: skip
    plain, _ = sequence_bounds(
        diffusion, TinyNet(), [(x0[:30], target[:30]), (x0[30:], target[30:])], bound, 2, 3,
        seed=0,
    )  # fmt: skip
    assert torch.equal(values, plain)
    figures = terms.figures(int(tokens.sum()))
    total = sum(figures["nats_per_token"]) + figures["reconstruction_nats_per_token"]
    assert total == pytest.approx(summarise(values, tokens)["nats_per_token"], rel=1e-9)
    assert len(figures["t_low"]) == len(figures["nats_per_token"]) == 16
    assert x0.shape[1] == L
