"""How a run ends. A signal: Ctrl-C (SIGINT) or SIGTERM asks the run to stop, and it says so
at once; the loop finishes the step (or abandons the dev evaluation between two network
calls), saves ``last/`` and prints the command that resumes it; a second Ctrl-C quits without
saving. Every ending is told to the loggers in words; NaN/inf weights fail the run."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from common.cli import FALSE, TRUE
from training.loggers import Logger

# flags of main.py that a resume command drops: one with a value, boolean ones (whose
# true/false may follow)
REPLACED = {"--resume_from": "value", "--overwrite": "boolean", "--no-overwrite": "boolean"}


class StopRequests:
    """Installs the SIGINT and SIGTERM handlers; ``__call__`` returns the first signal number
    received (None before any), which is what ``Trainer.fit`` asks as ``stop()``."""

    def __init__(self, announce: bool = True):
        self.received: list[int] = []
        self.announce = announce
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, self._handle)

    def _handle(self, signum: int, frame) -> None:
        if self.received and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received.append(signum)
        if self.announce and len(self.received) == 1:
            print(
                f"\n{signal.Signals(signum).name}: stopping after this step and saving last/ "
                "(Ctrl-C again to quit at once, without saving)",
                file=sys.stderr,
                flush=True,
            )

    def __call__(self) -> int | None:
        return self.received[0] if self.received else None


def resume_command(argv: list[str], last: Path) -> str:
    """The command line that resumes this run from ``last``: this run's flags without
    ``--resume_from``/``--overwrite``, plus ``--resume_from last``, run by the interpreter that
    ran this one (under torchrun when it ran with several processes)."""
    kept, dropping = [], None
    for arg in argv:
        if dropping == "value" or (dropping == "boolean" and arg.lower() in TRUE + FALSE):
            dropping = None
            continue
        name = arg.split("=", 1)[0]
        dropping = REPLACED.get(name) if "=" not in arg else None
        if name not in REPLACED:
            kept.append(arg)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    launcher = ["torchrun", f"--nproc_per_node={world}"] if world > 1 else [sys.executable]
    return shlex.join([*launcher, "main.py", *kept, "--resume_from", str(last)])


class EvaluationStopped(Exception):
    """A signal asked the run to stop during a dev evaluation."""


class Watched:
    """The denoiser of a dev evaluation: asks ``stop()`` before each network call (raising
    ``EvaluationStopped`` once it answers) and moves ``bar`` by one after it."""

    def __init__(self, model: torch.nn.Module, bar, stop: Callable[[], int | None]):
        self.model, self.bar, self.stop = model, bar, stop

    def __call__(self, *args, **kwargs) -> torch.Tensor:
        if self.stop() is not None:
            raise EvaluationStopped
        out = self.model(*args, **kwargs)
        self.bar.update(1)
        return out


SIGNAL_NAMES = {signal.SIGINT: "Ctrl-C (SIGINT)", signal.SIGTERM: "SIGTERM"}


def describe(error: BaseException) -> str:
    """An exception in a few words, for the dashboard."""
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}"[:200] if text else type(error).__name__


def tell_end(loggers: list[Logger], step: int, outcome: str, note: str) -> None:
    """Tell every logger how the run ended (``outcome``: finished, stopped or failed, as
    ``Logger.end``); a logger that cannot write (a full disk) does not hide what ended the
    run."""
    for logger in loggers:
        with contextlib.suppress(OSError):
            logger.end(step, outcome, note)


def check_finite_weights(model: torch.nn.Module, out: Path) -> None:
    """A run whose weights turned NaN/inf did not succeed, whatever its loss said."""
    bad = [name for name, p in model.named_parameters() if not torch.isfinite(p).all()]
    if bad:
        raise FloatingPointError(
            f"the weights are NaN/inf after training ({len(bad)} tensors, e.g. {bad[0]}); the "
            f"checkpoints in {out} are unusable: lower --lr or set --max_grad_norm"
        )
