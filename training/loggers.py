"""Where a run's figures go: one small interface, one class per destination.

``Trainer.fit`` calls every logger it was given; adding TensorBoard or W&B is one new class.
Only rank 0 builds loggers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from common.files import write_text


class Logger:
    """Receives the hyper-parameters, the training records, dev results and the best result.
    Every method is optional (a no-op here)."""

    def hyper(self, settings: dict[str, Any]) -> None:
        """The run's settings, once at the start."""

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


class FitlogLogger(Logger):
    """The fitlog dashboard's log folder (``fitlog log <folder>`` serves it)."""

    def __init__(self, log_dir: str | Path):
        self.fitlog = import_fitlog()
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        self.fitlog.set_log_dir(str(log_dir), new_log=True)

    def hyper(self, settings: dict[str, Any]) -> None:
        self.fitlog.add_hyper({k: v for k, v in settings.items() if v is not None})

    def train(self, record: dict[str, Any]) -> None:
        self.fitlog.add_loss(record["loss"], name="loss", step=record["step"])

    def dev(self, step: int, result: dict[str, Any]) -> None:
        figures = {k: result[k] for k in ("nats_per_token", "ppl_per_token")}
        self.fitlog.add_metric({"dev": figures}, step=step)

    def best(self, step: int, nats_per_token: float) -> None:
        self.fitlog.add_best_metric({"dev": {"nats_per_token": nats_per_token, "step": step}})

    def finish(self) -> None:
        self.fitlog.finish()
