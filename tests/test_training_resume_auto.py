"""``main.py --resume_from auto``: the latest intact checkpoint of --output_dir, a torn one
skipped, a fresh start where there is none."""

import json

import pytest

from common.errors import UsageError
from tests.test_cli import run_main
from training.resume import latest_checkpoint, resume_state


def args(tiny_bert, toy_txt, out, steps, *extra):
    return [
        "main.py", "--objective", "ar", "--model_name_or_path", str(tiny_bert),
        "--from_scratch", "true", "--dataset", str(toy_txt), "--batch_size", "8",
        "--max_length", "24", "--dev_size", "16", "--lr", "2e-3", "--warmup_steps", "0",
        "--logging_steps", "1", "--eval_steps", "4", "--save_steps", "4", "--keep_last", "3",
        "--fitlog_dir", "", "--output_dir", str(out), "--max_steps", str(steps),
        "--device", "cpu", "--quiet", *extra,
    ]  # fmt: skip


def logged_steps(out):
    lines = (out / "train_log.jsonl").read_text().splitlines()
    return [r["step"] for r in map(json.loads, lines) if "loss" in r]


def torn(path):
    """A torn file in place of ``path`` (a copy killed half-way). It replaces the file: the
    step copies share last/'s files as hard links, so writing into one would tear both."""
    path.unlink()
    path.write_bytes(b"torn")


def test_auto_takes_the_latest_intact_checkpoint_and_skips_a_torn_one(
    tiny_bert, toy_txt, tmp_path, capsys
):
    out = tmp_path / "run"
    code, _, err = run_main(*args(tiny_bert, toy_txt, out, 8, "--resume_from", "auto"),
                            capsys=capsys)  # fmt: skip
    assert code == 0, err  # nothing to resume: a fresh start
    assert logged_steps(out) == list(range(1, 9))
    assert latest_checkpoint(out) == out / "last"
    torn(out / "last" / "training_state.pt")
    assert latest_checkpoint(out) == out / "checkpoint-8"
    torn(out / "checkpoint-8" / "training_state.pt")
    assert latest_checkpoint(out) == out / "checkpoint-4"
    code, stdout, err = run_main(*args(tiny_bert, toy_txt, out, 10, "--resume_from", "auto",
                                       "--quiet", "false"), capsys=capsys)  # fmt: skip
    assert code == 0, err
    assert "resumed from step 4 of 10" in stdout + err
    assert logged_steps(out) == list(range(1, 11))


def test_auto_in_an_empty_folder_is_a_fresh_start_and_settings_still_checked(
    tiny_bert, toy_txt, tmp_path, capsys
):
    assert resume_state("auto", {}, tmp_path / "nothing") == (None, None)
    out = tmp_path / "run"
    assert run_main(*args(tiny_bert, toy_txt, out, 4), capsys=capsys)[0] == 0
    with pytest.raises(UsageError, match=r"--lr was 0\.002, now 0\.001"):
        settings = json.loads((out / "last" / "training_args.json").read_text())["args"]
        resume_state("auto", {**settings, "lr": 1e-3}, out)


def test_a_resume_checks_the_precision_computed_not_the_bf16_flag(
    tiny_bert, toy_txt, tmp_path, capsys, monkeypatch
):
    """A run that computed in fp32 resumes with either --bf16 where both compute fp32 (a CPU
    without native bf16: a grid started with the old default continues with --bf16 false);
    where --bf16 true would compute bf16, the resume is refused, naming both precisions."""
    from models import load_training_state
    from training import resume

    out = tmp_path / "run"
    code, _, err = run_main(*args(tiny_bert, toy_txt, out, 4, "--bf16", "true"), capsys=capsys)
    assert code == 0, err
    saved = json.loads((out / "last" / "training_args.json").read_text())["resolved"]
    settings = dict(load_training_state(out / "last")["args"])
    settings["bf16"] = not settings["bf16"]
    native = {"fp32": lambda bf16, device: "fp32", "bf16": lambda bf16, device: "bf16"}
    monkeypatch.setattr(resume, "resolve_precision", native[saved["precision"]])
    assert resume.resume_state(str(out / "last"), settings)[0] == out / "last"  # same compute
    other = "fp32" if saved["precision"] == "bf16" else "bf16"
    monkeypatch.setattr(resume, "resolve_precision", native[other])
    with pytest.raises(UsageError, match=rf"it computed in {saved['precision']}; here --bf16 "
                       rf"{str(settings['bf16']).lower()} would compute in {other}"):  # fmt: skip
        resume.resume_state(str(out / "last"), settings)
