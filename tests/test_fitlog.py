"""fitlog as its users expect, read from fitlog's own files and its own reader: the progress
total, the learning rate and skipped steps, hyper-parameters as given, one record across a
resume."""

from __future__ import annotations

import json

from tests.test_cli import run_main
from training.loggers import RECORD_POINTER, fitlog_json, import_fitlog


def train(tiny_bert, toy_txt, out, logs, steps, capsys, *extra):
    args = [
        "main.py", "--model_name_or_path", str(tiny_bert), "--from_scratch",
        "--dataset", str(toy_txt), "--word_freq_lambda", "0", "--batch_size", "8",
        "--max_length", "24", "--dev_size", "16", "--num_steps", "100", "--lr", "2e-3",
        "--warmup_steps", "5", "--logging_steps", "2", "--eval_steps", "4",
        "--fitlog_dir", str(logs), "--output_dir", str(out), "--max_steps", str(steps),
        "--quiet", *extra,
    ]  # fmt: skip
    code, stdout, err = run_main(*args, capsys=capsys)
    assert code == 0, err[-3000:]
    return stdout


def step_lines(path):
    return [json.loads(line.split("\t", 1)[1]) for line in path.read_text().splitlines()]


def test_dashboard_files_across_a_resume(tiny_bert, toy_txt, tmp_path, capsys):
    out, logs = tmp_path / "my-run", tmp_path / "fit-logs"
    train(tiny_bert, toy_txt, out, logs, 4, capsys)
    records = [p for p in logs.iterdir() if p.name.startswith("log_")]
    assert len(records) == 1
    record = records[0]
    assert (out / RECORD_POINTER).read_text().strip() == str(record.resolve())
    assert json.loads((record / "progress.log").read_text().splitlines()[0]) == {"total_steps": 4}
    stdout = train(tiny_bert, toy_txt, out, logs, 8, capsys, "--resume_from", str(out / "last"))
    assert "resumed from step 4 of 8" in stdout
    assert [p for p in logs.iterdir() if p.name.startswith("log_")] == records

    losses = step_lines(record / "loss.log")
    assert [r["step"] for r in losses] == [2, 4, 6, 8]
    for r in losses:
        assert r["loss"]["lr"] > 0 and r["loss"]["skipped_steps"] == 0
        assert r["loss"]["tokens_per_s"] > 0 and r["loss"]["loss"] > 0
    assert [r["step"] for r in step_lines(record / "metric.log")] == [4, 8]

    fitlog = import_fitlog()
    from fitlog.fastlog.log_read import LogReader

    reader = LogReader()
    reader.set_log_dir(str(logs))
    (shown,) = reader.read_logs()
    assert shown["hyper"]["output_dir"] == str(out) and "my-run" in shown["hyper"]["output_dir"]
    assert shown["hyper"]["model_name_or_path"] == str(tiny_bert)
    assert shown["hyper"]["lr"] == 2e-3 and shown["hyper"]["max_steps"] == 8
    assert shown["other"]["resumed_at_step"] == 4
    assert shown["meta"]["state"] == "finish"
    assert fitlog is not None


def test_hyphens_survive_fitlogs_rewrite():
    text = fitlog_json({"hyper": {"path": "runs/my-run", "n": -1, "lr": 5e-05, "a-b": "x"}})
    assert "-" not in text.replace("-1", "").replace("e-05", "")
    assert json.loads(text) == {"hyper": {"path": "runs/my-run", "n": -1, "lr": 5e-05,
                                          "a-b": "x"}}  # fmt: skip
