"""Checks of numeric flags and output locations, shared by the scripts.

Every check raises ``UsageError`` with one line that names the flag (or file), the value, and
the allowed range, before anything expensive (a model, a dataset) is loaded.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from common.errors import UsageError

# torch.Generator.manual_seed takes [-2**63, 2**64); the scripts derive further seeds from
# --seed (training: (seed · 1000003 + step) · 4099 + micro-batch), so each script states its own
# range; SEED_LIMIT is the sampling and evaluation scripts' (seed used as given).
SEED_LIMIT = 2**63
# main.py: the noise seed (seed · 1000003 + step) · 4099 + micro must stay below 2**64.
TRAINING_SEED_LIMIT = 2**32


def check_number(
    flag: str,
    value: float | int | None,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    note: str = "",
) -> None:
    """``value`` is finite and in [low, high] (``low_open``/``high_open`` exclude the ends).
    None passes (a flag left at its default of 'unset')."""
    if value is None:
        return
    ok = isinstance(value, int) or math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if ok:
        return
    left = "(" if low_open else "["
    right = ")" if high_open else "]"
    lo = "-inf" if low is None else _show(low)
    hi = "inf" if high is None else _show(high)
    suffix = f" ({note})" if note else ""
    raise UsageError(
        f"{flag} must be a finite number in {left}{lo}, {hi}{right}{suffix}, got {value}"
    )


def _show(number: float) -> str:
    if isinstance(number, int) and number >= 2**20 and (number & (number - 1)) == 0:
        return f"2**{number.bit_length() - 1}"
    return f"{number:g}" if isinstance(number, float) else str(number)


def check_seed(flag: str, value: int, limit: int = SEED_LIMIT) -> None:
    check_number(flag, value, 0, limit, high_open=True)


def check_output_dir(path: str | Path, flag: str) -> Path:
    """``path`` is (or can be made) a writable folder: created now, probed with a small file."""
    path = Path(path)
    blocker = _file_above(path)
    if blocker is not None:
        raise UsageError(
            f"{flag} {path} is not writable: {blocker} is a file, not a folder; pass another"
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        raise UsageError(
            f"{flag} {path} is not writable ({error.strerror or error}); pass another"
        ) from None
    return path


def check_output_file(path: str | Path, flag: str) -> Path:
    """``path`` can be written: not a folder, its folder exists or can be made and is writable."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{flag} {path} is a folder; pass a file name")
    check_output_dir(path.parent if str(path.parent) else Path("."), flag + " (its folder)")
    if path.exists() and not os.access(path, os.W_OK):
        raise UsageError(f"{flag} {path} exists and is read-only; pass another")
    return path


def _file_above(path: Path) -> Path | None:
    """The first existing non-folder among ``path`` and its parents (None if there is none)."""
    for candidate in (path, *path.parents):
        if candidate.exists() or candidate.is_symlink():
            return None if candidate.is_dir() else candidate
    return None


def nonfinite_field(data: object, prefix: str = "") -> tuple[str, float] | None:
    """The first (dotted field name, value) in nested dicts and lists whose number is NaN or
    infinite; None when every number is finite."""
    if isinstance(data, float):
        return None if math.isfinite(data) else (prefix or "value", data)
    if isinstance(data, dict):
        items = ((f"{prefix}.{key}" if prefix else str(key), value) for key, value in data.items())
    elif isinstance(data, (list, tuple)):
        items = ((f"{prefix}[{i}]", value) for i, value in enumerate(data))
    else:
        return None
    for name, value in items:
        found = nonfinite_field(value, name)
        if found is not None:
            return found
    return None


def require_finite(data: object, what: str, hint: str = "") -> None:
    """UsageError naming ``what`` and the field unless every number in ``data`` is finite: a
    result that is NaN or infinite is never printed or written."""
    found = nonfinite_field(data)
    if found is not None:
        field, value = found
        raise UsageError(
            f"{what}: field {field} is {value}, not a finite number; nothing was written"
            + (f" ({hint})" if hint else "")
        )


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except OSError:
        return False


def check_outputs_apart(
    outputs: dict[str, str | Path | None], inputs: dict[str, str | Path | None]
) -> None:
    """No output is one of the inputs: an output path that resolves (links included, hard
    links by inode) to an input file, and an input inside an output folder (which the command
    replaces), are one UsageError naming both, before any work. ``outputs`` and ``inputs`` map
    a flag (or a description) to a path; None entries are skipped. A folder input is given as
    the files the command reads from it (``models.checkpoint.checkpoint_inputs``), so that a
    new file beside them (``--output run/best/samples.txt``) stays allowed."""
    for out_flag, out_given in outputs.items():
        if out_given is None or str(out_given) == "":
            continue
        out = Path(out_given)
        for in_flag, in_given in inputs.items():
            if in_given is None or str(in_given) == "":
                continue
            given = Path(in_given)
            if _same_file(out, given):
                raise UsageError(
                    f"{out_flag} {out} is the input {in_flag} {given}: writing it would "
                    "destroy an input; choose another output path"
                )
            if out.is_dir() and out.resolve() in given.resolve().parents:
                raise UsageError(
                    f"the input {in_flag} {given} is inside {out_flag} {out}, which the command "
                    "replaces; move the input or choose another output path"
                )
