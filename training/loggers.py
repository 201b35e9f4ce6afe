"""Where a run's figures go: one small interface, one class per destination.

``Trainer.fit`` calls every logger it was given; adding TensorBoard or W&B is one new class.
Only rank 0 builds loggers.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from common.files import write_text


class Logger:
    """Receives the hyper-parameters, the training records, dev results and the best result.
    Every method is optional (a no-op here)."""

    def hyper(self, settings: dict[str, Any]) -> None:
        """The run's settings, once at the start."""

    def start(self, step: int, total_steps: int) -> None:
        """The loop starts at ``step`` (> 0 after a resume) of ``total_steps``."""

    def train(self, record: dict[str, Any]) -> None:
        """One record per ``--logging_steps``: step, loss, loss_per_token, lr, skipped_steps."""

    def dev(self, step: int, result: dict[str, Any]) -> None:
        """A dev evaluation at ``step`` (``nats_per_token``, ``ppl_per_token``, ``bound``...)."""

    def best(self, step: int, nats_per_token: float) -> None:
        """A new best dev bound."""

    def finish(self) -> None:
        """The run ended normally."""


class JsonlLog(Logger):
    """Append-only ``train_log.jsonl``: training records and ``dev_``-prefixed dev results.

    On resume, records after the resume step are dropped first.
    """

    def __init__(self, path: Path, resume_step: int | None = None):
        self.path = Path(path)
        if resume_step is not None and self.path.is_file():
            kept = [
                line
                for line in self.path.read_text().splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= resume_step
            ]
            write_text(self.path, "".join(f"{line}\n" for line in kept))

    def write(self, record: dict) -> None:
        with self.path.open("a") as log:
            log.write(json.dumps(record) + "\n")

    def train(self, record: dict[str, Any]) -> None:
        self.write(record)

    def dev(self, step: int, result: dict[str, Any]) -> None:
        self.write({"step": step, **{f"dev_{k}": v for k, v in result.items()}})


def import_fitlog():
    """fitlog, importable on NumPy ≥ 1.24 (fitlog 0.9.15 calls np.str, which NumPy 1.24
    removed; it means the builtin str)."""
    if "str" not in vars(np):
        np.str = str
    import fitlog

    return fitlog


RECORD_POINTER = "fitlog_record.txt"
STEP_LOGS = ("loss.log", "metric.log")


def fitlog_json(record: dict[str, Any]) -> str:
    """``record`` as JSON that fitlog stores unchanged.

    fitlog rewrites every ``-`` not followed by a digit to ``_`` in what it logs (0.9.15,
    ``Logger._write_to_logger``), so ``runs/my-run`` would show as ``runs/my_run``. Inside
    strings the hyphen is written as the JSON escape ``\\u002d``, which fitlog leaves alone
    and its dashboard (``json.loads``) reads back as ``-``. Numbers (``-1``, ``5e-05``) keep
    their hyphen: it is followed by a digit.
    """

    def hide(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace("-", "\x00")
        if isinstance(value, dict):
            return {hide(k): hide(v) for k, v in value.items()}
        return value

    return json.dumps(hide(record)).replace("\\u0000", "\\u002d")


def truncate_steps(record_dir: Path, last_step: int) -> None:
    """Drop the lines of fitlog's step logs after ``last_step`` (``Step:N\\t{...}``)."""
    for name in STEP_LOGS:
        file = record_dir / name
        if not file.is_file():
            continue
        kept = [
            line
            for line in file.read_text(encoding="utf-8").splitlines()
            if line.startswith("Step:") and int(line[5:].split("\t", 1)[0]) <= last_step
        ]
        write_text(file, "".join(f"{line}\n" for line in kept))


class FitlogLogger(Logger):
    """The fitlog dashboard's log folder (``fitlog log <folder> --ip 127.0.0.1`` serves it).

    One fitlog record per run: the record's folder is noted in
    ``<output_dir>/fitlog_record.txt``; a run resumed from ``<output_dir>/last`` appends to
    that record (after dropping its steps past the resume step) instead of opening a second.
    """

    def __init__(
        self,
        log_dir: str | Path,
        output_dir: str | Path | None = None,
        resume_step: int | None = None,
        resume_dir: str | Path | None = None,
    ):
        self.fitlog = import_fitlog()
        log_dir = Path(log_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        self.resumed = None
        record = None
        if resume_step is not None:
            for folder in (resume_dir, output_dir):
                pointer = Path(folder) / RECORD_POINTER if folder is not None else None
                if pointer is not None and pointer.is_file():
                    candidate = Path(pointer.read_text(encoding="utf-8").strip())
                    if (candidate / "meta.log").is_file():
                        record = candidate
                        break
        if record is not None:
            truncate_steps(record, resume_step)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "Append to an already exist log."
                self.fitlog.set_log_dir(str(record), new_log=True)
            self.resumed = resume_step
        else:
            self.fitlog.set_log_dir(str(log_dir), new_log=True)
            self.fitlog.create_log_folder()
        self.record = Path(self.fitlog.get_log_folder(absolute=True))
        if output_dir is not None:
            write_text(Path(output_dir) / RECORD_POINTER, f"{self.record}\n")

    def _write(self, record: dict[str, Any], logger_name: str) -> None:
        self.fitlog._logger._write_to_logger(fitlog_json(record), logger_name)

    def hyper(self, settings: dict[str, Any]) -> None:
        shown = {k: v for k, v in settings.items() if v is not None}
        self._write({"hyper": shown}, "hyper_logger")

    def start(self, step: int, total_steps: int) -> None:
        if self.resumed is None:
            self.fitlog.add_progress(total_steps)
        else:
            self.fitlog.add_other(step, name="resumed_at_step")

    def train(self, record: dict[str, Any]) -> None:
        figures = {
            k: record[k]
            for k in ("loss", "loss_per_token", "lr", "skipped_steps", "tokens_per_s")
            if k in record
        }
        self.fitlog.add_loss(figures, step=record["step"])

    def dev(self, step: int, result: dict[str, Any]) -> None:
        figures = {k: result[k] for k in ("nats_per_token", "ppl_per_token")}
        self.fitlog.add_metric({"dev": figures}, step=step)

    def best(self, step: int, nats_per_token: float) -> None:
        self.fitlog.add_best_metric({"dev": {"nats_per_token": nats_per_token, "step": step}})

    def finish(self) -> None:
        self.fitlog.finish()
