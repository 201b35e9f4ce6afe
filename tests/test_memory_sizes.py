"""Sizes that cannot fit: sampling runs any allowed --batch_size in chunks that fit the free
memory (the samples of --batch_size <chunk>), and training refuses a micro-batch that cannot fit
in one line naming the largest that does, before any work."""

import re
from types import SimpleNamespace

import pytest
import torch

from common.errors import UsageError
from common.memory import GIB
from generation import memory as sampling_memory
from tests import test_models_folder_checks, test_training_run_folder
from tests.test_cli import run_main
from training import memory

# module-scoped fixtures shared with those tests
saved = test_models_folder_checks.saved
counts = test_training_run_folder.counts
args = test_training_run_folder.args

BERT_BASE = SimpleNamespace(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                            intermediate_size=3072, vocab_size=30522,
                            max_position_embeddings=512)  # fmt: skip


def test_bert_base_parameters_are_estimated_within_two_percent():
    assert memory.parameters(BERT_BASE) == pytest.approx(109.5e6, rel=0.02)


def test_the_refusal_names_the_largest_batch_that_fits(monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda device: 16 * GIB)
    with pytest.raises(UsageError) as info:
        memory.check_batch_fits(16384, 1, 131, BERT_BASE, torch.device("cuda"))
    message = str(info.value)
    assert "\n" not in message and "16.0 GiB free" in message
    largest = int(re.search(r"--batch_size ≤ (\d+)", message).group(1))
    per, fixed = memory.sequence_bytes(BERT_BASE, 131), memory.parameters(BERT_BASE) * 16
    assert fixed + largest * per <= 0.9 * 16 * GIB < fixed + (largest + 1) * per
    assert f"--accumulation_steps {-(-16384 // largest)}" in message
    memory.check_batch_fits(largest, 1, 131, BERT_BASE, torch.device("cuda"))  # fits: no error


def test_a_model_that_alone_cannot_fit_is_named(monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda device: GIB // 2)
    with pytest.raises(UsageError, match=r"the model alone needs about 1\.6 GiB"):
        memory.check_batch_fits(1, 1, 131, BERT_BASE, torch.device("cuda"))


def test_unknown_free_memory_is_not_refused(monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda device: None)
    memory.check_batch_fits(2**20, 1, 131, BERT_BASE, torch.device("cpu"))
    monkeypatch.setattr(sampling_memory, "available_bytes", lambda device: None)
    ckpt = SimpleNamespace(model=SimpleNamespace(mlm=SimpleNamespace(config=BERT_BASE)))
    assert sampling_memory.fitting_batch(ckpt, 1024, 128, "cpu") == 1024


def test_sampling_always_gets_at_least_one_row_and_guidance_halves_the_rows(monkeypatch, capsys):
    ckpt = SimpleNamespace(model=SimpleNamespace(mlm=SimpleNamespace(config=BERT_BASE)))
    per_row = sampling_memory.row_bytes(128, 30522, 768, 12)
    monkeypatch.setattr(sampling_memory, "available_bytes", lambda device: per_row)
    assert sampling_memory.fitting_batch(ckpt, 64, 128, "cpu") == 1
    monkeypatch.setattr(sampling_memory, "available_bytes", lambda device: 40 * per_row)
    assert sampling_memory.fitting_batch(ckpt, 64, 128, "cpu") == 20
    assert sampling_memory.fitting_batch(ckpt, 64, 128, "cpu", copies=2) == 10
    assert sampling_memory.fitting_batch(ckpt, 8, 128, "cpu", copies=2) == 8
    assert capsys.readouterr().err.count("note:") == 3


def test_main_refuses_a_batch_that_cannot_fit_before_loading_data(
    monkeypatch,
    capsys,
    tmp_path,
    tiny_bert,
    toy_txt,
    counts,
):
    monkeypatch.setattr(memory, "available_bytes", lambda device: GIB)
    argv = args(tiny_bert, toy_txt, counts, tmp_path / "run", 2)
    argv[argv.index("--batch_size") + 1] = "16384"
    code, _, err = run_main(*argv, capsys=capsys)
    assert code == 2 and err.count("\n") == 1 and "pass --batch_size ≤" in err, err
    assert not (tmp_path / "run" / "train_log.jsonl").exists()


def sample(saved, tmp_path, capsys, name, batch):
    output = tmp_path / f"{name}.txt"
    code, _, err = run_main("predict.py", "--checkpoint", str(saved), "--num_samples", "5",
                            "--length", "6", "--num_steps", "4", "--batch_size", str(batch),
                            "--device", "cpu", "--output", str(output), capsys=capsys)  # fmt: skip
    assert code == 0, err
    return output.read_text(), err


def test_sampling_a_batch_larger_than_memory_runs_in_chunks_that_fit(
    saved,
    tmp_path,
    capsys,
    monkeypatch,
):
    per_row = sampling_memory.row_bytes(6, 30522, 32, 2)
    monkeypatch.setattr(sampling_memory, "available_bytes", lambda device: 2 * per_row * 2)
    chunked, note = sample(saved, tmp_path, capsys, "chunked", 1024)
    assert "sampling 2 rows per call (the samples of --batch_size 2)" in note
    direct, note = sample(saved, tmp_path, capsys, "direct", 2)
    assert "note:" not in note and chunked == direct and len(chunked.splitlines()) == 5
