"""Shareable checkpoints: every folder holds training_args.json and a model card, written
with the folder, and files get the user's umask (not safetensors' 0600)."""

from __future__ import annotations

import json
import os
import stat

import pytest

from models import load_checkpoint
from models.card import CARD, TRAINING_ARGS
from tests.test_fitlog import train


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_every_checkpoint_folder_has_card_and_args(tiny_bert, toy_txt, tmp_path, capsys,
                                                   umask_022):  # fmt: skip
    out = tmp_path / "run"
    train(tiny_bert, toy_txt, out, tmp_path / "logs", 4, capsys, "--keep_last", "1",
          "--timestep", "layerwise")  # fmt: skip
    for name in ("best", "last", "checkpoint-4"):
        folder = out / name
        run = json.loads((folder / TRAINING_ARGS).read_text())
        assert run["args"]["lr"] == 2e-3 and run["args"]["max_steps"] == 4
        assert run["args"]["from_scratch"] is True and run["args"]["timestep"] == "layerwise"
        assert run["resolved"]["max_steps"] == 4 and run["resolved"]["global_batch"] == 8
        assert run["step"] == 4 and run["best_dev_nats_per_token"] > 0
        card = (folder / CARD).read_text()
        assert card.startswith("---\npipeline_tag: text-generation\n")
        assert "Plain `transformers` sees only the masked LM" in card
        assert f"{run['best_dev_nats_per_token']:.4f} nats per token" in card
        assert "| `timestep` | `layerwise` |" in card and "4 of 4 optimizer steps" in card
        assert f"python predict.py --checkpoint {name}" in card and "hf download" in card
        for item in folder.iterdir():
            mode = stat.S_IMODE(item.stat().st_mode)
            assert mode == 0o644, (item.name, oct(mode))
        assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    assert load_checkpoint(out / "best").config.timestep == "layerwise"
    assert not (out / "best" / "training_state.pt").exists()
