"""The fitlog dashboard as its users see it, read from fitlog's own files with fitlog's own
readers (the table's LogReader, the trend page's ChartStepLogHandler): one chart per record
type holding one kind of quantity, the short table with resolved values and the best bound
first, the state of every ending, progress, the server configuration, one record per run
folder (a fork or a new folder never rewrites the original's), a full disk in one line."""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from common.precision import resolve_precision
from tests.test_cli import run_main
from training import loggers
from training.dashboard import OWNER, RECORD_POINTER, FitlogLogger, dashboard_settings


def fitlog_readers():
    """fitlog's table and chart readers (fitlog 0.9.15 calls np.str, gone since NumPy 1.24)."""
    if "str" not in vars(np):
        np.str = str
    from fitlog.fastlog.log_read import LogReader
    from fitlog.fastserver.server.chart_utils import ChartStepLogHandler

    return LogReader, ChartStepLogHandler


def train(tiny_bert, toy_txt, out, logs, steps, capsys, *extra, code=0):
    args = [
        "main.py", "--model_name_or_path", str(tiny_bert), "--from_scratch",
        "--dataset", str(toy_txt), "--word_freq_lambda", "0", "--batch_size", "8",
        "--max_length", "24", "--dev_size", "16", "--num_steps", "100", "--lr", "2e-3",
        "--warmup_steps", "5", "--logging_steps", "2", "--eval_steps", "4",
        "--fitlog_dir", str(logs), "--output_dir", str(out), "--max_steps", str(steps),
        "--quiet", *extra,
    ]  # fmt: skip
    status, stdout, err = run_main(*args, capsys=capsys)
    assert status == code, err[-3000:]
    return stdout + err


def records(logs):
    return sorted(p for p in logs.iterdir() if p.name.startswith("log_"))


def step_lines(path):
    return [json.loads(line.split("\t", 1)[1]) for line in path.read_text().splitlines()]


def table(logs):
    LogReader, _ = fitlog_readers()
    reader = LogReader()
    reader.set_log_dir(str(logs))
    return {row["id"]: row for row in reader.read_logs()}


def charts(record):
    _, ChartStepLogHandler = fitlog_readers()
    handler = ChartStepLogHandler(str(record), "test", round_to=6, max_steps=400)
    return handler.update_logs(only_once=True)


def test_dashboard_files_across_a_resume(tiny_bert, toy_txt, tmp_path, capsys):
    out, logs = tmp_path / "my-run", tmp_path / "fit-logs"
    train(tiny_bert, toy_txt, out, logs, 4, capsys)
    (record,) = records(logs)
    assert (out / RECORD_POINTER).read_text().strip() == str(record.resolve())
    assert json.loads((record / "progress.log").read_text()) == {"total_steps": 4}
    stdout = train(tiny_bert, toy_txt, out, logs, 8, capsys, "--resume_from", str(out / "last"))
    assert "resumed from step 4 of 8" in stdout
    assert records(logs) == [record]
    assert [r["step"] for r in step_lines(record / "loss.log")] == [2, 4, 6, 8]
    assert [r["step"] for r in step_lines(record / "metric.log")] == [4, 8]

    # the trend page: one chart per record type, each one kind of quantity
    shown = charts(record)
    assert {p["name"] for p in shown["loss"]} == {"train_nats_per_token"}
    assert {p["name"] for p in shown["metric"]} == {"nats_per_token-dev"}
    assert all(0 < p["value"] < 20 for p in shown["loss"] + shown["metric"])
    assert shown["finish"] is True

    row = table(logs)[record.name]
    assert list(row)[:2] == ["id", "meta"]
    meta = row["meta"]
    assert list(meta)[:4] == ["name", "state", "progress", "best_dev_nats_per_token"]
    assert meta["name"] == "my-run" and meta["state"] == "finish"
    assert meta["progress"] == "8/8 steps (100%)" and meta["ended"] == "finished: 8 steps"
    best = row["metric"]["dev"]
    assert meta["best_dev_nats_per_token"].startswith(f"{best['nats_per_token']:.4f}")
    assert best["ppl_per_token"] == pytest.approx(np.exp(best["nats_per_token"]), rel=1e-3)
    hyper = row["hyper"]
    assert hyper["model_name_or_path"] == str(tiny_bert) and hyper["max_steps"] == 8
    cpu = torch.device("cpu")
    assert hyper["device"] == "cpu" and hyper["precision"] == resolve_precision(True, cpu)
    assert hyper["word_freq_file"] == "none (no spindle)" and hyper["global_batch"] == 8
    assert "epochs" not in hyper and "task" not in hyper and "bf16" not in hyper
    assert hyper["hybrid_lambda"] == 0.01 and len(hyper) <= 22
    other = row["other"]
    assert other["resumed_at_step"] == 4 and float(other["lr_now"]) > 0
    assert other["tokens_per_s"] > 0 and other["skipped_steps"] == 0
    # what fitlog cannot draw, drawn beside it and named in the table: the latest training.png
    picture = out / "plots" / "training.png"
    assert other["picture"] == str(picture) and picture.stat().st_size > 10000
    assert other["sample"] == json.loads((out / "train_log.jsonl").read_text().splitlines()[-1]
                                         )["dev_samples"][0]  # fmt: skip

    config = (logs / "default.cfg").read_text()
    assert "max_no_updates=21600" in config and "update_every=4" in config
    assert "editable_columns=memo" in config
    assert "ignore_unchanged_columns=False" in config  # the state column shows when all agree


def test_a_fork_and_a_new_folder_get_their_own_records(tiny_bert, toy_txt, tmp_path, capsys):
    out, logs = tmp_path / "run", tmp_path / "logs"
    train(tiny_bert, toy_txt, out, logs, 4, capsys, "--keep_last", "2")
    (original,) = records(logs)
    before = {p.name: p.read_bytes() for p in original.iterdir()}
    fork = tmp_path / "fork"
    shutil.copytree(out, fork)
    train(tiny_bert, toy_txt, fork, logs, 6, capsys, "--resume_from", str(fork / "last"))
    train(tiny_bert, toy_txt, tmp_path / "new", logs, 6, capsys,
          "--resume_from", str(out / "checkpoint-4"))  # fmt: skip
    assert {p.name: p.read_bytes() for p in original.iterdir()} == before
    assert len(records(logs)) == 3
    for folder in (fork, tmp_path / "new"):
        record = Path(folder.joinpath(RECORD_POINTER).read_text().strip())
        assert record != original.resolve() and record.parent == logs.resolve()
        assert json.loads((record / OWNER).read_text())["path"] == str(folder.resolve())
        # the new record starts with the source's steps up to the resume step
        assert [r["step"] for r in step_lines(record / "loss.log")] == [2, 4, 6]


def test_a_full_fitlog_disk_is_one_line_naming_the_file(
    tiny_bert, toy_txt, tmp_path, capsys, monkeypatch
):
    logs = tmp_path / "logs"
    real_open = open

    def full_disk(path, *args, **kwargs):
        file = real_open(path, *args, **kwargs)
        if str(logs) in str(path):
            file.close()
            raise OSError(errno.ENOSPC, "No space left on device")
        return file

    monkeypatch.setattr(loggers, "open", full_disk, raising=False)
    err = train(tiny_bert, toy_txt, tmp_path / "run", logs, 4, capsys, code=2)
    lines = [line for line in err.splitlines() if "cannot write" in line]
    assert len(lines) == 1 and "Traceback" not in err and "Logging error" not in err
    assert "/logs/log_" in lines[0] and "hyper.log" in lines[0]
    assert "No space left on device" in lines[0]


def test_the_table_shows_only_what_defines_the_run():
    args = {"max_steps": -1, "epochs": 3, "objective": "mdlm", "task": None, "lr": 1e-4,
            "bf16": True, "device": "auto", "dataset": "toy", "max_target_length": 64,
            "hybrid_lambda": 0.01, "quiet": True}  # fmt: skip
    shown = dashboard_settings(args, {"device": "cpu", "precision": "fp32", "max_steps": 900})
    assert shown == {"dataset": "toy", "objective": "mdlm", "lr": 1e-4, "max_steps": 900,
                     "epochs": 3, "device": "cpu", "precision": "fp32"}  # fmt: skip
    seq2seq = dashboard_settings({**args, "task": "qqp", "max_steps": 10, "objective": "d3pm"},
                                 {})  # fmt: skip
    assert "epochs" not in seq2seq and seq2seq["max_target_length"] == 64
    assert seq2seq["hybrid_lambda"] == 0.01 and seq2seq["task"] == "qqp"


@pytest.mark.parametrize(
    ("outcome", "note", "state"),
    [("finished", "finished: 4 steps", "finish"),
     ("stopped", "stopped by Ctrl-C (SIGINT) at step 3; resumable", "stopped"),
     ("failed", "failed at step 3: RuntimeError: boom", "error")],
)  # fmt: skip
def test_every_ending_has_its_own_state(tmp_path, outcome, note, state):
    """A resumable stop is not an error; finished and failed runs' charts stop polling at
    once (fitlog knows only those two), a stopped one's after max_no_updates polls."""
    logger = FitlogLogger(tmp_path / "logs", tmp_path / "run-dir")
    logger.start(0, 4)
    logger.train({"step": 2, "train_nats_per_token": 3.5, "loss": 3.0, "lr": 5e-9,
                  "skipped_steps": 0, "tokens_per_s": 120.0})  # fmt: skip
    logger.end(3, outcome, note)
    row = table(tmp_path / "logs")[logger.record.name]
    assert row["meta"]["state"] == state and row["meta"]["ended"] == note
    assert row["meta"]["progress"] == "3/4 steps (75%)"
    assert row["other"]["lr_now"] == "5.000e-09"  # readable at any magnitude, unlike 6 decimals
    from fitlog.fastlog.log_read import is_log_record_finish

    assert is_log_record_finish(str(logger.record)) is (outcome != "stopped")
    assert "ended" not in row["other"]  # said once, in meta


def test_a_server_config_keeps_the_users_settings(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "default.cfg").write_text("[chart_settings]\nupdate_every=4\nmax_no_updates=40\n"
                                      "[basic_settings]\nround_to=3\n")  # fmt: skip
    FitlogLogger(logs, tmp_path / "run")
    text = (logs / "default.cfg").read_text()
    assert "max_no_updates=21600" in text and "round_to=3" in text
