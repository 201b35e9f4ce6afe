"""Every writer knows the disk can fill: a failed write is one line naming the location (and
the flag that chose it), and nothing half-written is left behind."""

import errno
import os
import shutil
import subprocess
import sys

import datasets
import pytest
import torch
import transformers.modeling_utils
from safetensors import SafetensorError

from common.errors import UsageError
from common.files import WriteError, atomic_path
from corpora.counting import save_counts
from models import checkpoint, load_checkpoint
from tests import test_models_folder_checks
from tests.test_cli import run_main

# module-scoped fixtures shared with those tests
saved = test_models_folder_checks.saved

FULL = "Error while serializing: I/O error: No space left on device (os error 28)"


def full_disk(*_, **__):
    raise SafetensorError(FULL)


def resave(folder):
    ckpt = load_checkpoint(folder)
    checkpoint.save_checkpoint(folder, ckpt.model, ckpt.tokenizer, ckpt.config, ckpt.counts,
                               None, ckpt.lengths)  # fmt: skip


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name or p.name.endswith(".old"))


@pytest.mark.parametrize("where", ["weights", "statistics"])
def test_a_full_disk_in_safetensors_is_one_line_and_keeps_the_folder(
    saved,
    tmp_path,
    monkeypatch,
    where,
):
    folder = tmp_path / "best"
    shutil.copytree(saved, folder)
    before = (folder / "model.safetensors").read_bytes()
    if where == "weights":  # the first file written: model.safetensors, by transformers
        monkeypatch.setattr(transformers.modeling_utils, "safe_save_file", full_disk)
    else:
        monkeypatch.setattr(checkpoint, "save_file", full_disk)
    with pytest.raises(WriteError) as info:
        resave(folder)
    message = str(info.value)
    assert "\n" not in message and str(folder) in message and "the disk is full" in message
    assert (folder / "model.safetensors").read_bytes() == before
    assert leftovers(tmp_path) == []


def test_a_full_disk_in_torch_save_of_the_counts_leaves_nothing(tmp_path, monkeypatch):
    target = tmp_path / "counts.pt"

    def torn(obj, path):
        with open(path, "wb") as handle:
            handle.write(b"PK\x03\x04 half")
        raise RuntimeError("[enforce fail at inline_container.cc] PytorchStreamWriter failed "
                           "writing file data/0: file write failed")  # fmt: skip

    monkeypatch.setattr(torch, "save", torn)
    with pytest.raises(WriteError, match=str(target)):
        save_counts(torch.ones(5, dtype=torch.int64), target)
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_error_inside_a_writer_is_not_blamed_on_the_disk(tmp_path):
    with pytest.raises(KeyError), atomic_path(tmp_path / "x.json") as tmp:
        tmp.write_text("half")
        raise KeyError("a bug, not a disk")
    assert list(tmp_path.iterdir()) == []


def word_freq(capsys, tiny_bert, toy_txt, cache, out):
    return run_main("word_freq.py", "--model_name_or_path", str(tiny_bert), "--dataset",
                    str(toy_txt), "--cache_dir", str(cache), "--output", str(out),
                    capsys=capsys)  # fmt: skip


def test_word_freq_with_a_file_as_cache_dir_names_the_flag(tiny_bert, toy_txt, tmp_path, capsys):
    cache = tmp_path / "cache"
    cache.write_text("not a folder")
    code, _, err = word_freq(capsys, tiny_bert, toy_txt, cache, tmp_path / "c.pt")
    assert code == 2 and err.count("\n") == 1 and "--cache_dir" in err and str(cache) in err
    assert not (tmp_path / "c.pt").exists()


def test_a_full_cache_disk_names_the_cache_and_leaves_no_partial_entry(
    tiny_bert, toy_txt, tmp_path, capsys, monkeypatch
):
    def fill(self, path, **_):
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, "data-00000-of-00001.arrow"), "wb") as handle:
            handle.write(b"\0" * 4096)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(datasets.Dataset, "save_to_disk", fill)
    cache = tmp_path / "cache"
    code, _, err = word_freq(capsys, tiny_bert, toy_txt, cache, tmp_path / "c.pt")
    assert code == 2 and err.count("\n") == 1, err
    assert "--cache_dir" in err and "the disk is full" in err and str(cache / "tokens") in err
    assert "--output" not in err
    assert list((cache / "tokens").iterdir()) == []


def test_a_killed_cache_build_leaves_no_temporary_behind(tiny_bert, toy_txt, tmp_path, capsys):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    tokens = tmp_path / "cache" / "tokens"
    stale = tokens / f".toy.txt-train-L128-0123.tmp-{dead.pid}"
    stale.mkdir(parents=True)
    (stale / "data-00000-of-00001.arrow").write_bytes(b"\0" * 1000)
    code, _, err = word_freq(capsys, tiny_bert, toy_txt, tmp_path / "cache", tmp_path / "c.pt")
    assert code == 0, err
    assert not stale.exists() and len(list(tokens.iterdir())) == 1


def test_a_read_only_location_is_one_line_and_keeps_the_previous_file(tmp_path):
    target = tmp_path / "samples.txt"
    target.write_text("previous\n")
    with pytest.raises(UsageError) as info, atomic_path(target) as tmp:
        tmp.write_text("half")
        raise OSError(errno.EROFS, "Read-only file system")
    assert "read-only" in str(info.value) and "\n" not in str(info.value)
    assert target.read_text() == "previous\n" and list(tmp_path.iterdir()) == [target]
