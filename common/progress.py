"""Progress bars that stay readable: on stderr, only where asked, no carriage-return floods.

On a terminal a bar is a normal tqdm bar. Off a terminal (CI logs, ``> log 2>&1``) it prints
a plain line at most every ``PLAIN_INTERVAL_S`` seconds and one at the end. ``--quiet`` (see
``common.cli.Parser.quiet``) calls ``set_quiet(True)``: no bars at all.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Any

from tqdm.auto import tqdm

PLAIN_INTERVAL_S = 30.0
ESCAPES = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # cursor moves of nested bars
COUNT = re.compile(r"\| *(\S+/\S+) \[")  # tqdm's "n/total [" after the bar
_settings = {"quiet": False}


def set_quiet(quiet: bool) -> None:
    """Scripts call this once after parsing: ``quiet`` turns every bar off. Quiet or off a
    terminal, the bars of ``datasets`` (tokenising, saving) are turned off too: they would
    flood a log with carriage returns."""
    _settings["quiet"] = bool(quiet)
    if quiet or not _is_terminal(sys.stderr):
        import datasets

        datasets.disable_progress_bars()


def _is_terminal(stream: Any) -> bool:
    return hasattr(stream, "isatty") and stream.isatty()


def is_quiet() -> bool:
    return _settings["quiet"]


class _PlainLines:
    """A tqdm output file that turns each ``\\r`` redraw into one plain line, and drops a
    redraw at the count of the line before (tqdm draws the final state again when it closes,
    with only the rate changed)."""

    def __init__(self, stream: Any):
        self.stream = stream
        self.last: tuple[str, str] | str = ""

    def write(self, text: str) -> None:
        for part in ESCAPES.sub("", text).replace("\r", "\n").split("\n"):
            line = part.rstrip()
            found = COUNT.search(line)  # "desc: 40%|####  | 4/10 [00:03<00:04, ...]"
            count = (line.split(":", 1)[0], found.group(1)) if found else line
            if line.strip() and count != self.last:
                self.stream.write(line + "\n")
                self.last = count

    def flush(self) -> None:
        self.stream.flush()


def progress(total: int | None, desc: str, unit: str = "it", enabled: bool = True, **kwargs):
    """A tqdm bar on stderr; disabled when ``enabled`` is false (other ranks) or quiet."""
    stream = sys.stderr
    if not enabled or is_quiet():
        return tqdm(total=total, desc=desc, unit=unit, disable=True, **kwargs)
    if not _is_terminal(stream):
        kwargs.setdefault("mininterval", PLAIN_INTERVAL_S)
        kwargs.setdefault("maxinterval", PLAIN_INTERVAL_S)
        kwargs.setdefault("ascii", True)
        return tqdm(
            total=total, desc=desc, unit=unit, file=_PlainLines(stream), dynamic_ncols=False,
            ncols=100, **kwargs,
        )  # fmt: skip
    return tqdm(total=total, desc=desc, unit=unit, file=stream, dynamic_ncols=True, **kwargs)


class CallCounter:
    """A denoiser (any callable) that moves ``bar`` by one per network call.

    It keeps the wrapped denoiser's ``select_rows`` (the sub-batch of a guided denoiser that a
    per-row sampler forwards), counting the sub-batch's calls too. ``after()``, if given, runs
    after every call (e.g. to refresh a rate shown beside the bar).
    """

    def __init__(self, denoiser: Any, bar: Any, after: Callable[[], None] | None = None):
        self.denoiser, self.bar, self.after = denoiser, bar, after
        if hasattr(denoiser, "select_rows"):
            self.select_rows = self._select_rows

    def _select_rows(self, rows: Any) -> CallCounter:
        return CallCounter(self.denoiser.select_rows(rows), self.bar, self.after)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        out = self.denoiser(*args, **kwargs)
        self.bar.update(1)
        if self.after is not None:
            self.after()
        return out


def write(message: str) -> None:
    """A line on stdout that does not break a bar."""
    tqdm.write(message, file=sys.stdout)
