"""What a terminal or a pipe shows: off a terminal one plain line per redraw and no repeated
final line; predict's tokens/s beside the bar before the first batch ends."""

from __future__ import annotations

import io
import sys

import pytest
import torch

from common import progress as progress_module
from common.progress import progress
from generation.config import SamplingConfig
from generation.unconditional import generate
from models import Checkpoint, DiffusionConfig, build_model


@pytest.fixture(autouse=True)
def bars_on(monkeypatch):
    """Bars shown, whatever --quiet an earlier test's script set (a process-wide setting)."""
    monkeypatch.setitem(progress_module._settings, "quiet", False)


def test_piped_bars_do_not_repeat_the_final_line(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    bar = progress(3, "sampling", "step")
    bar.update(3)
    bar.set_postfix(tokens_per_s="12.5")  # a redraw, then close() draws the same state again
    bar.close()
    lines = stream.getvalue().splitlines()
    assert sum("3/3" in line for line in lines) == 1, lines
    assert all("\r" not in line for line in lines)


def test_a_nested_bar_off_a_terminal_writes_no_cursor_moves(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    outer = progress(4, "training", "step")
    inner = progress(2, "dev bound", "call", leave=False)  # tqdm moves the cursor for it
    inner.update(2)
    inner.close()
    outer.update(4)
    outer.close()
    assert "\x1b" not in stream.getvalue() and "dev bound" in stream.getvalue()


def test_the_token_rate_shows_before_the_first_batch_ends(tiny_bert, tokenizer, monkeypatch,
                                                          tmp_path):  # fmt: skip
    torch.manual_seed(0)
    config = DiffusionConfig(num_steps=32, max_length=24)
    model = build_model(str(tiny_bert), tokenizer, config, from_scratch=True).eval()
    ckpt = Checkpoint(model, tokenizer, config, None, tmp_path, torch.tensor([0, 1, 2]))
    postfixes = []
    real = progress_module.progress

    def watched(*args, **kwargs):
        bar = real(*args, **kwargs)
        original = bar.set_postfix

        def record(*a, **k):
            postfixes.append((bar.n, k.get("tokens_per_s")))
            return original(*a, **k)

        bar.set_postfix = record
        return bar

    monkeypatch.setattr("generation.unconditional.progress", watched)
    sampling = SamplingConfig(sampler="ancestral", sampling_steps=8, step_size=1, seed=0)
    generate(ckpt, 4, 6, 4, sampling)  # one batch of 4 samples, 8 steps
    early = [(n, rate) for n, rate in postfixes if n < 8]
    assert early and all(float(rate) > 0 for _, rate in early)
