"""A run folder (``--output_dir``) belongs to one run.

- ``claim``: an advisory lock (``fcntl.flock`` on ``<output_dir>/.lock``), held for the run's
  life and released by the kernel on any exit (a dead run's lock is free); a second run on the
  folder stops at once. A new run refuses a folder that already holds a run (``last/``,
  ``best/``, ``train_log.jsonl``) unless it resumes or passes ``--overwrite``, which removes the
  earlier run's files (only those the run layout names and the step copies it recorded).
  Temporary folders and files of dead processes (``.<name>.tmp-<pid>``) are removed.
- ``record_checkpoint`` / ``owned_checkpoints``: the ``checkpoint-<step>`` copies this run wrote
  (``<output_dir>/checkpoints.json``), the only ones ``--keep_last`` pruning deletes.
- ``repair_log``: a torn last line of ``train_log.jsonl`` (a kill mid-write) is dropped.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
from pathlib import Path

from common.errors import UsageError
from common.files import (
    RUN_LOCK,
    read_text,
    remove_path,
    remove_stale_temporaries,
    write_json,
    write_text,
)
from models.folder_files import foreign_files

LOCK = RUN_LOCK
RECORD = "checkpoints.json"
LOG = "train_log.jsonl"
RUN_FILES = ("last", "best", LOG)
# the copies a crash mid-save leaves besides the run files
RUN_LEFTOVERS = (".last.old", ".best.old")


class RunLock:
    """The open lock file; ``release`` (or process exit) frees the folder."""

    def __init__(self, path: Path, handle):
        self.path, self.handle = path, handle

    def release(self) -> None:
        if self.handle is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
            self.handle = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def lock(output_dir: Path) -> RunLock:
    path = Path(output_dir) / LOCK
    try:
        handle = path.open("a+")
    except OSError as error:
        raise UsageError(
            f"--output_dir {output_dir}: cannot create {path} ({error.strerror}); pass a "
            "writable --output_dir"
        ) from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        handle.close()
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise UsageError(
                f"--output_dir {output_dir} is in use by another run (it holds {path}); wait "
                "for it to end or pass another --output_dir"
            ) from None
        raise UsageError(
            f"--output_dir {output_dir}: cannot lock {path} ({error.strerror})"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return RunLock(path, handle)


def existing_run(output_dir: Path) -> list[str]:
    """The files of an earlier run in ``output_dir``."""
    output_dir = Path(output_dir)
    names = [
        n
        for n in (*RUN_FILES, *RUN_LEFTOVERS)
        if (output_dir / n).exists() or (output_dir / n).is_symlink()
    ]
    return names + [f"checkpoint-{s}" for s in owned_checkpoints(output_dir)]


def claim(output_dir: Path, resume_dir: Path | None, overwrite: bool) -> RunLock:
    """Lock ``output_dir`` for this run (see the module doc); the caller releases it.

    A resume continues the run in ``output_dir`` only when it resumes from that folder's own
    checkpoint (``<output_dir>/last``, ``checkpoint-<step>``...), decided on the real folders
    (links resolved, then device and inode compared), so a link to the folder's own ``last/``
    is its own checkpoint. Resuming another run's checkpoint into a folder that holds a run
    would mix the two. ``--overwrite`` never deletes what the resume reads, and removes the
    earlier run all or nothing: its files are first renamed into one temporary folder.
    """
    output_dir = Path(output_dir)
    held = lock(output_dir)
    try:
        remove_stale_temporaries(output_dir)
        found = existing_run(output_dir)
        own = resume_dir is not None and same_folder(real_parent(resume_dir), output_dir)
        if found and not own:
            if not overwrite:
                raise UsageError(
                    f"--output_dir {output_dir} already holds a run ({', '.join(found)}); "
                    f"continue it with --resume_from {output_dir / 'last'} (a checkpoint of "
                    "that run), pass another --output_dir, or --overwrite true to replace it"
                )
            if resume_dir is not None:
                _keep_resume_source(output_dir, found, Path(resume_dir))
            _keep_foreign_files(output_dir, found)
            discard(output_dir, found)
            (output_dir / RECORD).unlink(missing_ok=True)
    except BaseException:
        held.release()
        raise
    return held


def real_parent(path: Path) -> Path:
    """The folder that really holds ``path`` (links, also ``path`` itself, resolved)."""
    return Path(os.path.realpath(path)).parent


def same_folder(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` are one folder (device and inode), whatever the paths."""
    try:
        first, second = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (first.st_dev, first.st_ino) == (second.st_dev, second.st_ino)


def _keep_resume_source(output_dir: Path, found: list[str], resume_dir: Path) -> None:
    """Refuse an ``--overwrite`` that would delete the checkpoint the resume reads."""
    source = Path(os.path.realpath(resume_dir))
    for name in found:
        target = output_dir / name
        if target.is_symlink():
            continue  # only the link is removed
        real = Path(os.path.realpath(target))
        if source == real or real in source.parents:
            raise UsageError(
                f"--overwrite would delete {target}, which --resume_from {resume_dir} reads; "
                f"resume without --overwrite, or copy the checkpoint elsewhere first"
            )


def _keep_foreign_files(output_dir: Path, found: list[str]) -> None:
    """Refuse an ``--overwrite`` that would delete files a user put in the earlier run's
    checkpoint folders (``predict.py --output run/best/samples.txt``)."""
    foreign = [f"{name}/{file}" for name in found for file in foreign_files(output_dir / name)]
    if foreign:
        shown = ", ".join(str(output_dir / item) for item in foreign[:3])
        more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        raise UsageError(
            f"--overwrite would delete files that main.py did not write: {shown}{more}; move "
            "them out of the checkpoint folders first (nothing was removed)"
        )


def discard(output_dir: Path, names: list[str]) -> None:
    """Remove ``names`` of ``output_dir`` all or nothing: each is renamed into one temporary
    folder (a failed rename puts the moved ones back), which is then deleted; links are
    removed, never what they point to. A failure is one line naming the file."""
    trash = output_dir / f".overwritten.tmp-{os.getpid()}"
    moved: list[str] = []
    try:
        trash.mkdir(exist_ok=True)
        for name in names:
            (output_dir / name).rename(trash / name.replace("/", "_"))
            moved.append(name)
    except OSError as error:
        for name in moved:
            with contextlib.suppress(OSError):
                (trash / name.replace("/", "_")).rename(output_dir / name)
        with contextlib.suppress(OSError):
            trash.rmdir()
        failed = names[len(moved)] if len(moved) < len(names) else trash.name
        raise UsageError(
            f"--overwrite: cannot remove {output_dir / failed} ({error.strerror or error}); "
            "nothing of the earlier run was removed: fix the permissions or pass another "
            "--output_dir"
        ) from None
    for entry in trash.iterdir():
        with contextlib.suppress(OSError):
            remove_path(entry)
    with contextlib.suppress(OSError):
        trash.rmdir()


def owned_checkpoints(output_dir: Path) -> list[int]:
    """The steps of the ``checkpoint-<step>`` copies this run wrote, oldest first."""
    path = Path(output_dir) / RECORD
    if not path.is_file():
        return []
    try:
        steps = json.loads(read_text(path, "--output_dir")).get("steps", [])
    except (ValueError, AttributeError):
        raise UsageError(
            f"{path} is damaged (it lists the checkpoint-<step> folders this run wrote); delete "
            "it (pruning then keeps every checkpoint-<step> folder) and rerun"
        ) from None
    if not isinstance(steps, list) or not all(isinstance(s, int) for s in steps):
        raise UsageError(f"{path}: 'steps' must be a list of integers; delete the file and rerun")
    return sorted(set(steps))


def record_checkpoint(output_dir: Path, step: int) -> None:
    steps = sorted(set(owned_checkpoints(output_dir)) | {step})
    write_json(Path(output_dir) / RECORD, {"steps": steps})


def forget_checkpoints(output_dir: Path, steps: list[int]) -> None:
    kept = [s for s in owned_checkpoints(output_dir) if s not in set(steps)]
    write_json(Path(output_dir) / RECORD, {"steps": kept})


def repair_log(path: Path) -> None:
    """Before a resume: drop a torn last line of ``train_log.jsonl`` (a kill mid-write); a
    damaged line elsewhere is an error naming the file and line."""
    path = Path(path)
    if not path.is_file():
        return
    lines = read_text(path, "--output_dir").splitlines()
    kept = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError
        except ValueError:
            if number == len(lines):
                break  # torn by a kill mid-write: the step is logged again after the resume
            raise UsageError(
                f"{path}:{number}: not a JSON record; the log is damaged: delete or fix the line"
            ) from None
        kept.append(line)
    if len(kept) != sum(1 for line in lines if line.strip()):
        write_text(path, "".join(f"{line}\n" for line in kept))


def prune_checkpoints(output_dir: Path, keep_last: int) -> None:
    """Keep the ``keep_last`` newest ``checkpoint-<step>`` folders among those this run wrote
    (``training.run_dir.record_checkpoint``); folders it did not write are never touched."""
    owned = owned_checkpoints(output_dir)
    old = owned[: max(0, len(owned) - keep_last)]
    for step in old:
        shutil.rmtree(output_dir / f"checkpoint-{step}", ignore_errors=True)
    if old:
        forget_checkpoints(output_dir, old)
