"""Running the project's scripts from a study: call runs one as a subprocess (a failure one line,
a stop passed on and waited for, so that the script saves its last/), guarded runs a study
so that Ctrl-C or SIGTERM ends it with the script's state saved and the documented status."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from common.errors import UsageError

REPO = Path(__file__).resolve().parents[2]


def call(script: str | Path, *argv: object) -> None:
    """``python3 <script> argv`` as a subprocess (``script``: a name of the project's scripts,
    ``main`` for main.py, a path, or a dotted module of the project run with ``-m``). A
    failure raises ``UsageError``, one line naming the command (the script has printed its own
    error above it); a script stopped by Ctrl-C or SIGTERM (status 130 or 143) raises
    ``Stopped`` so that the grid stops too. A SIGTERM sent to the grid is passed on, and the
    script is waited for, so that it saves its last/."""
    args = [str(a) for a in argv]
    env = None
    if str(script).endswith(".py"):
        command, shown = [str(script)], Path(script).name
    elif "." in str(script):  # a module: found from the checkout, whatever the working folder
        command, shown = ["-m", str(script)], f"-m {script}"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}  # fmt: skip
    else:
        command, shown = [str(REPO / f"{script}.py")], f"{script}.py"
    shown = f"{shown} {' '.join(args)}".strip()
    process = subprocess.Popen([sys.executable, *command, *args], env=env)
    try:
        code = process.wait()
    except (KeyboardInterrupt, Stopped) as stop:
        if isinstance(stop, Stopped):  # Ctrl-C reaches the whole process group by itself
            process.send_signal(stop.number)
        while process.poll() is None:  # a second signal (timeout's to the group) waits too
            try:
                process.wait()
            except (KeyboardInterrupt, Stopped):
                continue
        raise
    if code in (128 + signal.SIGINT, 128 + signal.SIGTERM) or -code in (
        signal.SIGINT,
        signal.SIGTERM,
    ):
        raise Stopped(code - 128 if code > 0 else -code)
    if code != 0:
        raise UsageError(f"{shown} exited with status {code} (its error is above)")


class Stopped(Exception):
    """A signal (Ctrl-C's SIGINT, or SIGTERM) stopped the grid; ``number`` is the signal."""

    def __init__(self, number: int):
        super().__init__(number)
        self.number = number


def _on_sigterm(number: int, frame: object) -> None:
    raise Stopped(number)


def guarded(name: str, work: Callable[[], object]) -> None:
    """Run a study's ``work``: a bad flag, results file or run folder is one ``error:`` line
    with status 2; Ctrl-C or SIGTERM is one line with status 130 or 143 (the same command
    continues: finished steps are skipped, an interrupted run resumes from its last/)."""
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        work()
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except (KeyboardInterrupt, Stopped) as stop:
        number = stop.number if isinstance(stop, Stopped) else signal.SIGINT
        print(
            f"{name}: stopped by {signal.Signals(number).name}; run the same command again "
            "to continue (finished runs are skipped, an interrupted run resumes from its last/)",
            file=sys.stderr,
        )
        sys.exit(128 + number)
    finally:
        signal.signal(signal.SIGTERM, previous)
