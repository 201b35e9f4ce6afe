"""Stopping a run by a signal: Ctrl-C (SIGINT) or SIGTERM asks the run to stop, and it says so
at once; the loop finishes the step (or abandons the dev evaluation), saves ``last/`` and
prints the command that resumes it. A second Ctrl-C quits without saving."""

from __future__ import annotations

import os
import shlex
import signal
import sys
from pathlib import Path

from common.cli import FALSE, TRUE

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
    ``--resume_from``/``--overwrite``, plus ``--resume_from last`` (under torchrun when it
    ran with several processes)."""
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
    launcher = ["torchrun", f"--nproc_per_node={world}"] if world > 1 else ["python"]
    return shlex.join([*launcher, "main.py", *kept, "--resume_from", str(last)])
