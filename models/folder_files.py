"""Which files of a checkpoint folder a save writes, and the files around them: what an
output must not overwrite, a user's own files carried across a save, and the modes a save
gives its files."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from models.card import CARD, TRAINING_ARGS
from models.folder_checks import SETTINGS, STATISTICS, TIME, TRAINING_STATE

# files a save writes (or may write, depending on the settings); never carried from the old copy
WRITTEN = {SETTINGS, STATISTICS, TIME, TRAINING_STATE, CARD, TRAINING_ARGS, "config.json",
           "generation_config.json", "model.safetensors", "pytorch_model.bin"}  # fmt: skip
TOKENIZER_FILES = ("tokenizer", "vocab", "special_tokens", "added_tokens", "merges", "spiece",
                   "sentencepiece")  # fmt: skip


def checkpoint_inputs(folder: str | Path, flag: str = "--checkpoint") -> dict[str, Path]:
    """{"<flag>'s <name>": path} for every file of the checkpoint ``folder`` that a save
    writes (``is_checkpoint_file``): what an output must not overwrite. Other files in the
    folder (samples, notes) are not the checkpoint's; a folder that does not exist has none."""
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    return {f"{flag}'s {p.name}": p for p in sorted(folder.iterdir())
            if p.is_file() and is_checkpoint_file(p.name)}  # fmt: skip


def is_checkpoint_file(name: str) -> bool:
    """Whether ``name`` is one a checkpoint save writes (model, tokenizer, settings, state;
    also a large model's weight shards and their index)."""
    return name in WRITTEN or name.startswith((*TOKENIZER_FILES, "model", "pytorch_model"))


def foreign_files(folder: Path) -> list[str]:
    """The entries of a checkpoint folder that no save writes (a user's samples or notes)."""
    if folder.is_symlink() or not folder.is_dir():
        return []
    return sorted(entry.name for entry in folder.iterdir() if not is_checkpoint_file(entry.name))


def carry_foreign_files(old: Path, new: Path) -> list[str]:
    """Keep what a user put in a checkpoint folder (``predict.py --output best/samples.txt``)
    when the folder is replaced: every entry of ``old`` that the new save did not write is
    hard-linked (or copied) into ``new``. Returns the names carried."""
    if not old.is_dir():
        return []
    carried = []
    for entry in sorted(old.iterdir()):
        target = new / entry.name
        if target.exists() or target.is_symlink() or is_checkpoint_file(entry.name):
            continue
        if entry.is_symlink():
            target.symlink_to(os.readlink(entry))
        elif entry.is_dir():
            shutil.copytree(entry, target, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(entry, target)
        carried.append(entry.name)
    return carried


def link_files(source: Path, target: Path) -> None:
    """Hard-link (or copy, where links are not supported) every file a save writes from the
    checkpoint folder ``source`` into the folder ``target``, except the model card (which
    names its folder). A save replaces a folder's files by renames, so the links keep the
    content they had: one copy on disk for two folders."""
    for entry in sorted(source.iterdir()):
        if entry.is_file() and is_checkpoint_file(entry.name) and entry.name != CARD:
            _link_or_copy(entry, target / entry.name)


def _link_or_copy(source: str | Path, target: str | Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def current_umask() -> int:
    """The process umask, read without changing it where Linux shows it (``os.umask`` can
    only be read by setting it, which would race with threads creating files)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def apply_umask(folder: Path) -> None:
    """Give ``folder`` and the files in it the modes ``open``/``mkdir`` would under the
    current umask (0644 and 0755 under umask 022)."""
    umask = current_umask()
    folder.chmod(0o777 & ~umask)
    for item in folder.rglob("*"):
        item.chmod((0o777 if item.is_dir() else 0o666) & ~umask)
