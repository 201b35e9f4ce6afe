"""Where a run's figures go: one small interface, one class per destination.

``Trainer.fit`` calls every logger it was given; adding TensorBoard or W&B is one new class.
Only rank 0 builds loggers. docs/dashboard.md says what the fitlog dashboard shows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from common.files import write_text


def append_line(path: Path, line: str) -> None:
    """Append ``line`` and a newline to ``path``; a failed write (full disk, size limit)
    is an OSError that names ``path`` (a plain ``write`` error names no file)."""
    try:
        with open(path, "a", encoding="utf-8") as file:
            file.write(line + "\n")
    except OSError as error:
        raise OSError(error.errno, error.strerror, str(path)) from None


class Logger:
    """Receives the hyper-parameters, the training records, dev results, the best result and
    how the run ended. Every method is optional (a no-op here)."""

    def hyper(self, settings: dict[str, Any]) -> None:
        """The settings that define the run, once at the start."""

    def start(self, step: int, total_steps: int, best: float | None = None) -> None:
        """The loop starts at ``step`` (> 0 after a resume) of ``total_steps``; ``best`` is
        the best dev bound so far (a resumed run's)."""

    def train(self, record: dict[str, Any]) -> None:
        """One record per ``--logging_steps``: step, train_nats_per_token, loss, lr,
        grad_norm, skipped_steps, tokens_per_s."""

    def dev(self, step: int, result: dict[str, Any]) -> None:
        """A dev evaluation at ``step`` (``nats_per_token``, ``ppl_per_token``, ``bound``...)."""

    def best(self, step: int, nats_per_token: float) -> None:
        """A new best dev bound."""

    def end(self, step: int, outcome: str, note: str) -> None:
        """The run ended at ``step``: ``outcome`` is ``finished`` (ran to the end),
        ``stopped`` (by a signal, resumable) or ``failed``; ``note`` says how, in words."""


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
        append_line(self.path, json.dumps(record))

    def train(self, record: dict[str, Any]) -> None:
        self.write(record)

    def dev(self, step: int, result: dict[str, Any]) -> None:
        self.write({"step": step, **{f"dev_{k}": v for k, v in result.items()}})
