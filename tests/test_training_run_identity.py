"""A run's identity is its real folder (device and inode), not the path that names it:
``--overwrite`` never deletes what a resume reads or follows a link, removes an earlier run all
or nothing, and files a user puts in a checkpoint folder survive the next save."""

import os

import pytest
import torch

from common.errors import UsageError
from models import DiffusionConfig, build_model, load_checkpoint
from models.checkpoint import save_checkpoint
from tests import test_training_run_folder
from tests.test_cli import run_main
from training import run_dir

# module-scoped fixtures shared with those tests
args = test_training_run_folder.args
counts = test_training_run_folder.counts
earlier = test_training_run_folder.earlier
finished = test_training_run_folder.finished


def fake_run(out):
    """A folder with the files of an earlier run: last/, best/ and its log."""
    for name in ("last", "best"):
        (out / name).mkdir(parents=True)
        (out / name / "model.safetensors").write_bytes(name.encode())
    (out / "train_log.jsonl").write_text('{"step": 1}\n')
    return out


def test_overwrite_with_a_link_to_the_folders_own_last_keeps_the_run(tmp_path):
    out = fake_run(tmp_path / "run")
    link = tmp_path / "link"
    link.symlink_to(out / "last")
    with run_dir.claim(out, link, overwrite=True):
        pass
    assert (out / "last" / "model.safetensors").read_bytes() == b"last"
    assert (out / "best").is_dir() and (out / "train_log.jsonl").is_file()


def test_an_output_dir_named_through_a_link_is_the_same_run(tmp_path):
    out = fake_run(tmp_path / "run")
    alias = tmp_path / "alias"
    alias.symlink_to(out)
    with run_dir.claim(alias, out / "last", overwrite=True):
        pass
    assert (out / "last").is_dir() and (out / "train_log.jsonl").is_file()


def test_overwrite_removes_a_linked_best_not_what_it_points_to(tmp_path):
    out = fake_run(tmp_path / "run")
    elsewhere = tmp_path / "precious"
    elsewhere.mkdir()
    (elsewhere / "model.safetensors").write_text("keep")
    os.rename(out / "best", tmp_path / "old-best")
    (out / "best").symlink_to(elsewhere)
    with run_dir.claim(out, None, overwrite=True):
        pass
    assert sorted(p.name for p in out.iterdir()) == [".lock"]
    assert (elsewhere / "model.safetensors").read_text() == "keep"


def test_overwrite_never_deletes_the_checkpoint_a_resume_reads(tmp_path):
    out = fake_run(tmp_path / "run")
    inner = out / "last" / "copy"
    inner.mkdir()
    with pytest.raises(UsageError, match=r"which --resume_from .* reads") as info:
        run_dir.claim(out, inner, overwrite=True)
    assert "\n" not in str(info.value)
    assert (out / "last" / "model.safetensors").is_file() and (out / "best").is_dir()


def test_a_failed_overwrite_removes_nothing(tmp_path, monkeypatch):
    out = fake_run(tmp_path / "run")
    real_rename = os.rename
    calls = []

    def rename(self, target):
        calls.append(self.name)
        if self.name == "train_log.jsonl":
            raise PermissionError(13, "Permission denied")
        return real_rename(self, target)

    monkeypatch.setattr(type(out), "rename", rename)
    with pytest.raises(UsageError, match="nothing of the earlier run was removed") as info:
        run_dir.claim(out, None, overwrite=True)
    monkeypatch.undo()
    assert "train_log.jsonl" in str(info.value) and "\n" not in str(info.value)
    assert (out / "last" / "model.safetensors").read_bytes() == b"last"
    assert (out / "best" / "model.safetensors").read_bytes() == b"best"
    assert not list(out.glob(".overwritten.tmp-*"))


def test_files_a_user_put_in_a_checkpoint_folder_survive_the_next_save(
    tiny_bert, tokenizer, tmp_path
):
    config = DiffusionConfig(num_steps=10, word_freq_lambda=0.0, max_length=8)
    torch.manual_seed(0)
    model = build_model(str(tiny_bert), tokenizer, config, from_scratch=True)
    best = tmp_path / "best"
    save_checkpoint(best, model, tokenizer, config, None)
    (best / "samples.txt").write_text("a sample\n")
    (best / "notes").mkdir()
    (best / "notes" / "n.md").write_text("mine")
    with torch.no_grad():
        model.mlm.bert.embeddings.word_embeddings.weight.add_(1.0)
    save_checkpoint(best, model, tokenizer, config, None)
    assert (best / "samples.txt").read_text() == "a sample\n"
    assert (best / "notes" / "n.md").read_text() == "mine"
    loaded = load_checkpoint(best).model.mlm.bert.embeddings.word_embeddings.weight
    assert torch.equal(loaded, model.mlm.bert.embeddings.word_embeddings.weight)


def test_resume_through_a_link_with_overwrite_continues_the_run(
    tiny_bert,
    toy_txt,
    counts,
    earlier,
    capsys,
    tmp_path,
):
    link = tmp_path / "link-to-last"
    link.symlink_to(earlier / "last")
    argv = args(tiny_bert, toy_txt, counts, earlier, 4, "--resume_from", str(link),
                "--overwrite", "true")  # fmt: skip
    code, _, err = run_main(*argv, capsys=capsys)
    assert code == 0, err[-2000:]
    assert (earlier / "best").is_dir() and (earlier / "last").is_dir()
    steps = [line for line in (earlier / "train_log.jsonl").read_text().splitlines()]
    assert '"step": 1' in steps[0] and '"step": 4' in steps[-1]


def test_overwrite_refuses_to_delete_files_a_user_put_in_a_checkpoint_folder(tmp_path):
    out = fake_run(tmp_path / "run")
    (out / "best" / "samples.txt").write_text("a sample\n")
    (out / "best" / "model-00001-of-00002.safetensors").write_bytes(b"shard")
    with pytest.raises(UsageError, match="did not write") as info:
        run_dir.claim(out, None, overwrite=True)
    message = str(info.value)
    assert str(out / "best" / "samples.txt") in message and "model-0000" not in message
    assert (out / "best" / "samples.txt").is_file() and (out / "last").is_dir()
