"""Files written so that a crash never leaves a half-written one: a temporary sibling, then a
rename. A failed write (disk full, file-size limit, read-only folder) removes the temporary
copy, leaves the previous file as it was and raises ``WriteError``: one line naming the path."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

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


def write_error(path: Path, error: BaseException, kept: bool = True) -> WriteError:
    """The one-line error of a failed write of ``path`` (``kept``: the previous copy is intact)."""
    code = getattr(error, "errno", None)
    why = getattr(error, "strerror", None) or (str(error).splitlines() or [type(error).__name__])[0]
    advice = ADVICE.get(code, "check the disk and the permissions, or write elsewhere")
    tail = "; the previous copy is unchanged" if kept else ""
    return WriteError(f"cannot write {path} ({why}): {advice}{tail}")


def _is_write_failure(error: BaseException) -> bool:
    """OSErrors, and the RuntimeErrors torch.save / safetensors raise when the disk fails."""
    if isinstance(error, OSError):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and any(
        marker in text
        for marker in ("PytorchStreamWriter", "unexpected pos", "file write failed",
                       "No space left", "File too large", "Read-only file system")
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
    except (OSError, RuntimeError) as error:
        if not _is_write_failure(error):
            raise
        raise write_error(path, error) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> None:
    """Write text (UTF-8) atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, data: dict | list) -> None:
    """Write indented JSON atomically."""
    write_text(path, json.dumps(data, indent=2) + "\n")


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
        if isinstance(error, (OSError, RuntimeError)) and _is_write_failure(error):
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
