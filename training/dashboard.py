"""The fitlog dashboard of a run: FitlogLogger writes one fitlog record per run folder as
fitlog's own files (fitlog log <fitlog_dir> --ip 127.0.0.1 serves them), with the settings
the table shows (dashboard_settings) and the server configuration it needs."""

from __future__ import annotations

import json
import math
import os
import re
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from common.errors import UsageError
from common.files import read_text, write_text
from training.loggers import Logger, append_line
from training.settings import shown

RECORD_POINTER = "fitlog_record.txt"

OWNER = "run_folder.json"

STEP_LOGS = ("loss.log", "metric.log")

RECORD_FILES = ("meta.log", "hyper.log", "best_metric.log", "other.log", *STEP_LOGS)

# fitlog's live chart stops asking after max_no_updates polls (update_every seconds apart)
# without a new point: 40 × 4 s by default, shorter than one dev evaluation of a large run.
CHART_SETTINGS = {"update_every": 4, "max_no_updates": 21600}  # 24 hours

SERVER_CONFIG = (
    "[chart_settings]\nmax_points=400\nchart_exclude_columns=\n"
    "update_every={update_every}\nmax_no_updates={max_no_updates}\n\n"
    "[basic_settings]\nstr_max_length=48\nround_to=6\nignore_unchanged_columns=False\n\n"
    "[column_settings]\neditable_columns=memo\n"  # not fitlog's git message columns
)

# fitlog's chart stops polling at once for finish and error; a stopped run's chart stops
# after max_no_updates polls without a new point
STATES = {"finished": "finish", "stopped": "stopped", "failed": "error"}

# Shown after the declared settings (training.settings): values the run resolves itself.
RESOLVED_SHOWN = ("global_batch", "precision")


def dashboard_settings(args: dict[str, Any], resolved: dict[str, Any]) -> dict[str, Any]:
    """The dashboard table's settings (``training.settings``' ``shown``): ``args`` (the flags)
    overridden by ``resolved`` (what the run actually uses: device, precision, the
    token-count file read, max_steps...)."""
    values = {**args, **resolved}
    names = shown(values.get("objective"), values.get("task"), args.get("max_steps", -1))
    return {name: values[name] for name in (*names, *RESOLVED_SHOWN) if name in values}


def folder_identity(folder: Path) -> dict[str, Any]:
    """What makes ``folder`` itself (a copy of it has another inode)."""
    stat = os.stat(folder)
    return {"path": os.path.realpath(folder), "device": stat.st_dev, "inode": stat.st_ino}


def owned_record(output_dir: Path) -> Path | None:
    """The fitlog record that ``output_dir``'s pointer names, if it was opened for this very
    folder (not for the folder it was copied from)."""
    record = recorded(output_dir)
    if record is None or not (record / OWNER).is_file():
        return None
    try:
        owner = json.loads((record / OWNER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    mine = folder_identity(output_dir)
    return (
        record
        if {k: owner.get(k) for k in ("device", "inode")}
        == {k: mine[k] for k in ("device", "inode")}
        else None
    )


def recorded(folder: Path | None) -> Path | None:
    """The record named by ``folder``'s pointer file, if it still exists."""
    pointer = Path(folder) / RECORD_POINTER if folder is not None else None
    if pointer is None or not pointer.is_file():
        return None
    record = Path(read_text(pointer).strip())
    return record if (record / "meta.log").is_file() else None


def step_of(line: str) -> int | None:
    """The step of a fitlog step line (``Step:N\\t{...}``), None for any other line."""
    match = re.match(r"Step:(\d+)\t", line)
    return int(match.group(1)) if match else None


def steps_up_to(file: Path, last_step: int) -> str:
    """The step lines of ``file`` up to ``last_step``, as text."""
    if not file.is_file():
        return ""
    kept = []
    for line in file.read_text(encoding="utf-8").splitlines():
        step = step_of(line)
        if step is not None and step <= last_step:
            kept.append(f"{line}\n")
    return "".join(kept)


def new_record(log_dir: Path) -> Path:
    """A new, empty fitlog record folder ``log_dir/log_YYYYmmdd_HHMMSS`` (fitlog's name; the
    next free second when two runs start in the same one)."""
    now = datetime.now()
    for offset in range(3600):
        folder = log_dir / f"log_{(now + timedelta(seconds=offset)):%Y%m%d_%H%M%S}"
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue
    raise FileExistsError(f"{log_dir}: no free record name in the next hour")


def configure_server(log_dir: Path) -> None:
    """``log_dir/default.cfg``, the configuration ``fitlog log`` reads: a live chart that
    keeps asking for 24 hours without a new point. An existing file keeps every other
    setting; only a shorter ``max_no_updates`` is raised."""
    config = log_dir / "default.cfg"
    if not config.is_file():
        write_text(config, SERVER_CONFIG.format(**CHART_SETTINGS))
        return
    text = config.read_text(encoding="utf-8")
    match = re.search(r"^max_no_updates\s*=\s*(\d+)\s*$", text, re.MULTILINE)
    if match and int(match.group(1)) < CHART_SETTINGS["max_no_updates"]:
        line = f"max_no_updates={CHART_SETTINGS['max_no_updates']}"
        write_text(config, text[: match.start()] + line + text[match.end() :])


class FitlogLogger(Logger):
    """A fitlog record (``fitlog log <fitlog_dir> --ip 127.0.0.1`` serves it), written as
    fitlog's own files so that every write that fails names its file.

    One record per run folder: ``<output_dir>/fitlog_record.txt`` names it, and the record's
    ``run_folder.json`` names the folder (device and inode). A run resumed into its own
    folder continues its record (its steps past the resume step dropped first); a resume
    into another folder, or into a copy of the folder, opens a new record that starts with
    the source record's steps up to the resume step: the source record is only read.
    """

    def __init__(
        self,
        log_dir: str | Path,
        output_dir: str | Path,
        resume_step: int | None = None,
        resume_dir: str | Path | None = None,
    ):
        log_dir, output_dir = Path(log_dir), Path(output_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        output_dir.mkdir(parents=True, exist_ok=True)
        configure_server(log_dir)
        self.name, self.output_dir = output_dir.name, output_dir
        self.resumed = resume_step
        self.total = 0
        self.best_text, self.step = "none yet", 0
        record = owned_record(output_dir) if resume_step is not None else None
        if record is not None:
            for name in STEP_LOGS:
                write_text(record / name, steps_up_to(record / name, resume_step))
        else:
            record = new_record(log_dir)
            source = recorded(Path(resume_dir)) if resume_step is not None and resume_dir else None
            write_text(record / OWNER, json.dumps(folder_identity(output_dir)) + "\n")
            for name in RECORD_FILES:
                history = steps_up_to(source / name, resume_step) if source is not None else ""
                write_text(record / name, history)
        self.record = record.resolve()
        write_text(output_dir / RECORD_POINTER, f"{self.record}\n")

    def _append(self, name: str, record: dict[str, Any], step: int | None = None) -> None:
        text = json.dumps(record)
        append_line(self.record / name, text if step is None else f"Step:{step}\t{text}")

    def _meta(self, state: str, ended: str = "-") -> None:
        """A meta line: fitlog reads a record's state from the last one, and the table
        shows the latest value of every field (the first line sets the columns' order)."""
        progress = f"{self.step}/{self.total} steps ({100 * self.step // max(self.total, 1)}%)"
        self._append("meta.log", {"meta": {
            "name": self.name, "state": state, "progress": progress,
            "best_dev_nats_per_token": self.best_text, "ended": ended,
        }})  # fmt: skip

    def hyper(self, settings: dict[str, Any]) -> None:
        shown = {k: v for k, v in settings.items() if v is not None}
        self._append("hyper.log", {"hyper": shown})

    def start(self, step: int, total_steps: int, best: float | None = None) -> None:
        self.total, self.step = total_steps, step
        if best is not None:
            self.best_text = f"{best:.4f}"
        self._meta("running")
        if self.resumed is None:
            append_line(self.record / "progress.log", json.dumps({"total_steps": total_steps}))
        else:
            self._append("other.log", {"other": {"resumed_at_step": step}})

    def train(self, record: dict[str, Any]) -> None:
        self.step = step = record["step"]
        self._append("loss.log", {"loss": {"train_nats_per_token":
                                  record["train_nats_per_token"]}, "step": step}, step)  # fmt: skip
        self._meta("running")
        self._append("other.log", {"other": {
            "lr_now": f"{record['lr']:.3e}", "tokens_per_s": record.get("tokens_per_s"),
            "skipped_steps": record.get("skipped_steps", 0),
            "grad_norm": record.get("grad_norm"),
        }})  # fmt: skip

    def dev(self, step: int, result: dict[str, Any]) -> None:
        self._append("metric.log", {"metric": {"dev": {"nats_per_token":
                     result["nats_per_token"]}}, "step": step}, step)  # fmt: skip
        drawn = {"sample": (result.get("samples") or [None])[0], "gen_ppl": result.get("gen_ppl"),
                 "picture": self.draw()}  # fmt: skip
        if any(v is not None for v in drawn.values()):
            self._append("other.log", {"other": {k: v for k, v in drawn.items() if v is not None}})

    def draw(self) -> str | None:
        """``<output_dir>/plots/training.png`` redrawn from the run's log (what fitlog's charts
        cannot show: axis titles, both figures in one unit, the dev bound's interval; the
        table's ``picture`` names it), or None when it could not be drawn: a picture never
        stops a run."""
        from evaluation.figures import plot_training
        from evaluation.plot_sources import loss_meaning

        picture = self.output_dir / "plots" / "training.png"
        try:
            plot_training(self.output_dir / "train_log.jsonl", picture, self.name,
                          loss_meaning(self.output_dir))  # fmt: skip
        except (UsageError, OSError):
            return None
        return str(picture)

    def best(self, step: int, nats_per_token: float) -> None:
        self.best_text = f"{nats_per_token:.4f} (step {step})"
        ppl = round(math.exp(min(nats_per_token, 700.0)), 2)  # exp(710) overflows a float
        self._append("best_metric.log", {"metric": {"dev": {
            "nats_per_token": nats_per_token, "ppl_per_token": ppl, "step": step,
        }}})  # fmt: skip

    def end(self, step: int, outcome: str, note: str) -> None:
        self.step = step
        self._append("other.log", {"other": {"ended_at": time.strftime("%Y-%m-%d %H:%M:%S")}})
        self._meta(STATES[outcome], note)
