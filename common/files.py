"""Files written so that a crash never leaves a half-written one: a temporary sibling, then a
rename. A failed write (disk full, file-size limit, read-only folder) removes the temporary
copy, leaves the previous file as it was and raises ``WriteError``: one line naming the path."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from common.checks import require_finite
from common.errors import UsageError

ADVICE = {
    errno.ENOSPC: "the disk is full: free space or write elsewhere",
    errno.EDQUOT: "the disk quota is exceeded: free space or write elsewhere",
    errno.EFBIG: "the file-size limit (ulimit -f) was reached: raise it or write elsewhere",
    errno.EROFS: "the file system is read-only: write elsewhere",
    errno.EACCES: "permission denied: write elsewhere or fix the permissions",
    errno.EPERM: "permission denied: write elsewhere or fix the permissions",
    errno.ENOTDIR: "a file stands where a folder is needed: write elsewhere",
}


class WriteError(UsageError):
    """Writing an output failed; the previous file (if any) is intact."""


def error_code(error: BaseException) -> int | None:
    """The errno of a failed write: ``OSError.errno``, or the ``os error N`` that safetensors'
    and torch's own exception types carry in their message."""
    code = getattr(error, "errno", None)
    if code is None:
        match = re.search(r"os error (\d+)|code: (\d+)|\[Errno (\d+)\]", str(error))
        code = int(next(g for g in match.groups() if g)) if match else None
    return code


def write_error(path: Path, error: BaseException, kept: bool = True, hint: str = "") -> WriteError:
    """The one-line error of a failed write of ``path`` (``kept``: the previous copy is intact;
    ``hint`` names the flag that chooses the location, e.g. ``--cache_dir``)."""
    code = error_code(error)
    why = getattr(error, "strerror", None) or (
        os.strerror(code) if code else (str(error).splitlines() or [type(error).__name__])[0]
    )
    advice = ADVICE.get(code, "check the disk and the permissions, or write elsewhere")
    tail = "; the previous copy is unchanged" if kept else ""
    where = f" (chosen by {hint})" if hint else ""
    return WriteError(f"cannot write {path}{where} ({why}): {advice}{tail}")


def is_write_failure(error: BaseException) -> bool:
    """OSErrors, and what torch.save (RuntimeError) and safetensors (``SafetensorError``, its
    own type) raise when the disk fails."""
    if isinstance(error, OSError):
        return True
    if not isinstance(error, Exception):
        return False
    text = str(error)
    return (isinstance(error, RuntimeError) or type(error).__name__ == "SafetensorError") and any(
        marker in text
        for marker in ("PytorchStreamWriter", "unexpected pos", "file write failed", "I/O error",
                       "No space left", "File too large", "Read-only file system", "os error")
    )  # fmt: skip


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write; on success it replaces ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        tmp.replace(path)
    except Exception as error:
        if not is_write_failure(error):
            raise
        raise write_error(path, error) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> None:
    """Write text (UTF-8) atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def json_text(data: object, indent: int | None = 2, what: str = "a result") -> str:
    """Strict JSON (no ``NaN`` or ``Infinity`` tokens, which standard JSON lacks): a non-finite
    number is one UsageError naming ``what`` and the field instead."""
    require_finite(data, what)
    return json.dumps(data, indent=indent, allow_nan=False)


def write_json(path: str | Path, data: dict | list) -> None:
    """Write indented, strict JSON atomically (``json_text``: a NaN or an infinity is refused
    before anything is written)."""
    write_text(path, json_text(data, what=str(path)) + "\n")


def read_json(path: str | Path, what: str = "") -> object:
    """The JSON value in ``path``; a missing, unreadable, torn or non-JSON file is one
    UsageError naming the file (``what``: the flag or role) and where the JSON breaks."""
    path = Path(path)
    where = f"{what} {path}".strip()
    try:
        text = read_text(path, what)
    except OSError as error:
        raise UsageError(f"{where}: cannot be read ({error.strerror or error})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(
            f"{where}: not complete JSON (line {error.lineno}, column {error.colno}: "
            f"{error.msg}); it may be truncated: write it again"
        ) from None


@contextlib.contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling directory; on success it replaces ``path`` by renames.

    A crash at any point leaves either the old ``path`` or ``.<name>.old`` loadable.
    """
    path = Path(path)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    old = path.parent / f".{path.name}.old"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    except OSError as error:
        raise write_error(path, error) from None
    try:
        yield tmp
    except BaseException as error:
        shutil.rmtree(tmp, ignore_errors=True)
        if is_write_failure(error):
            raise write_error(path, error) from None
        raise
    try:
        if path.exists():
            shutil.rmtree(old, ignore_errors=True)
            path.rename(old)
        tmp.rename(path)
    except OSError as error:
        shutil.rmtree(tmp, ignore_errors=True)
        raise write_error(path, error) from None
    shutil.rmtree(old, ignore_errors=True)


TEMPORARY = re.compile(r"^\..+\.tmp-(\d+)$")


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (this process counts as dead: its temporaries are from an
    earlier, finished call)."""
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OverflowError:
        return False
    return True


def remove_path(path: Path) -> None:
    """Remove a file, a link (never what it points to) or a folder."""
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path)


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Remove the ``.<name>.tmp-<pid>`` folders and files (written by ``atomic_path``,
    ``atomic_directory`` and the token cache) of processes that are gone; returns them."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        match = TEMPORARY.match(entry.name)
        if not match or pid_alive(int(match.group(1))):
            continue
        with contextlib.suppress(OSError):
            remove_path(entry)
            removed.append(entry)
    return removed


RUN_LOCK = ".lock"  # held by a running main.py in its --output_dir


def locked_by_another(lock: str | Path) -> bool:
    """Whether a live process holds ``flock`` on the file ``lock`` (a running main.py holds
    ``<output_dir>/.lock``); False when the file does not exist or cannot be opened."""
    try:
        with Path(lock).open("rb") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
    except OSError:
        return False
    return False


def read_text(path: str | Path, what: str = "") -> str:
    """UTF-8 text of ``path``; undecodable bytes are reported with the file, line and byte
    offset (``what`` names the flag, e.g. ``--dataset``)."""
    path = Path(path)
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise decode_error(path, data, error, what) from None


def iter_jsonl(path: Path, what: str = "") -> Iterator[tuple[int, object, str]]:
    """(line number, parsed value, line) for each non-blank line of a JSON-lines file, read
    one line at a time; a line that is not UTF-8 or not JSON is a ``UsageError`` naming the
    file and the line (``what`` names the flag, e.g. ``--output``)."""
    prefix = f"{what} " if what else ""
    with Path(path).open("rb") as lines:
        for number, raw in enumerate(lines, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                raise UsageError(
                    f"{prefix}{path}:{number}: not UTF-8 text (byte 0x{raw[error.start]:02x} "
                    f"at column {error.start + 1}); convert the file to UTF-8"
                ) from None
            if not line.strip():
                continue
            try:
                yield number, json.loads(line), line.strip()
            except json.JSONDecodeError as error:
                raise UsageError(
                    f"{prefix}{path}:{number}: not valid JSON ({error.msg}); fix or delete that "
                    "line"
                ) from None


def read_jsonl(path: str | Path, what: str = "") -> list[dict]:
    """The JSON objects of a JSON-lines file, one per non-blank line. A missing file, a line
    that is not JSON or not an object is one ``UsageError`` naming the file and the line."""
    path = Path(path)
    prefix = f"{what} " if what else ""
    if not path.is_file():
        state = "is not a file" if path.exists() else "no such file"
        raise UsageError(f"{prefix}{path}: {state}")
    records = []
    for number, record, _ in iter_jsonl(path, what):
        if not isinstance(record, dict):
            raise UsageError(f"{prefix}{path}:{number}: a JSON object per line is expected")
        records.append(record)
    return records


def decode_error(path: Path, data: bytes, error: UnicodeDecodeError, what: str = "") -> UsageError:
    line = data[: error.start].count(b"\n") + 1
    prefix = f"{what} " if what else ""
    return UsageError(
        f"{prefix}{path}:{line}: not UTF-8 text (byte 0x{data[error.start]:02x} at offset "
        f"{error.start}); convert the file to UTF-8"
    )
