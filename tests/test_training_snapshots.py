"""A checkpoint is read as one version: a folder replaced while it is read is read again, a
folder that mixes two saves is refused, and a run that is still training is not resumed from."""

import json
import shutil
import subprocess
import sys

import pytest
import torch

from common.errors import UsageError
from models import checkpoint, load_checkpoint, load_training_state
from models.card import TRAINING_ARGS
from tests import test_models_folder_checks, test_training_run_folder
from tests.test_cli import run_main

# module-scoped fixtures shared with those tests
saved = test_models_folder_checks.saved
args = test_training_run_folder.args
counts = test_training_run_folder.counts


def weights(ckpt):
    return ckpt.model.mlm.bert.embeddings.word_embeddings.weight


@pytest.fixture
def two_versions(saved, tmp_path):
    """``last``: a copy of ``saved``; ``next``: the same folder with other weights."""
    last, following = tmp_path / "last", tmp_path / "next"
    shutil.copytree(saved, last)
    ckpt = load_checkpoint(saved)
    with torch.no_grad():
        weights(ckpt).add_(1.0)
    checkpoint.save_checkpoint(following, ckpt.model, ckpt.tokenizer, ckpt.config, ckpt.counts,
                               None, ckpt.lengths)  # fmt: skip
    return last, following


def replace(folder, new):
    """What a save does: the new folder renamed over the old one."""
    folder.rename(folder.with_name(".last.old"))
    shutil.copytree(new, folder)
    shutil.rmtree(folder.with_name(".last.old"))


def test_a_folder_replaced_mid_read_is_read_again_as_one_version(two_versions, monkeypatch):
    last, following = two_versions
    real = checkpoint._load_checkpoint
    reads = []

    def racing(path, device):
        result = real(path, device)  # the first read sees the old weights ...
        if not reads:
            replace(last, following)  # ... and a save lands before it ends
        reads.append(result)
        return result

    monkeypatch.setattr(checkpoint, "_load_checkpoint", racing)
    loaded = load_checkpoint(last)
    assert len(reads) == 2
    assert torch.equal(weights(loaded), weights(load_checkpoint(following)))


def test_a_folder_replaced_on_every_read_is_refused(two_versions, monkeypatch):
    last, following = two_versions
    real = checkpoint._load_checkpoint

    def racing(path, device):
        result = real(path, device)
        replace(last, following)
        return result

    monkeypatch.setattr(checkpoint, "_load_checkpoint", racing)
    with pytest.raises(UsageError, match="replaced 5 times while it was read") as info:
        load_checkpoint(last)
    assert "\n" not in str(info.value)


def test_a_training_state_of_another_save_than_the_folder_is_refused(saved, tmp_path):
    folder = tmp_path / "last"
    shutil.copytree(saved, folder)
    (folder / TRAINING_ARGS).write_text(json.dumps({"step": 7, "args": {}}))
    with pytest.raises(UsageError, match="mixes two saves") as info:
        load_training_state(folder)
    assert "training_state.pt" in str(info.value)
    (folder / TRAINING_ARGS).write_text(json.dumps({"step": 1, "args": {}}))
    assert load_training_state(folder)["step"] == 1


def hold_lock(folder):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a');"
         "fcntl.flock(f, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(60)",
         str(folder / ".lock")], stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_the_checkpoint_of_a_run_still_training_is_not_resumed_from(saved, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(saved, run / "last")
    holder = hold_lock(run)
    try:
        with pytest.raises(UsageError, match="still training") as info:
            load_training_state(run / "last")
        assert "\n" not in str(info.value)
    finally:
        holder.kill()
        holder.wait()
    assert load_training_state(run / "last")["step"] == 1


def test_main_refuses_to_resume_from_a_live_run_into_a_new_folder(
    saved,
    tiny_bert,
    toy_txt,
    counts,
    tmp_path,
    capsys,
):
    run = tmp_path / "run"
    shutil.copytree(saved, run / "last")
    holder = hold_lock(run)
    try:
        fork = tmp_path / "fork"
        argv = args(tiny_bert, toy_txt, counts, fork, 4, "--resume_from", str(run / "last"))
        code, _, err = run_main(*argv, capsys=capsys)
    finally:
        holder.kill()
        holder.wait()
    assert code == 2 and "still training" in err and err.count("\n") == 1
    assert not (fork / "last").exists()
