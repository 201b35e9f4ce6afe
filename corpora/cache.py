"""Token ids of a dataset split, tokenised once and cached on disk, read memory-mapped.

A cache entry is a folder ``<root>/tokens/<dataset>-<split>-L<max_length>-<key>`` written by
``Dataset.save_to_disk`` (one ``input_ids`` column of uint16, or int32 for vocabularies over
65536), plus ``diffusionbert.json`` holding what the key was computed from. The key is a hash
of the tokenizer (its full serialised vocabulary, normaliser and pre-tokeniser, not its name),
the dataset's identity (a built-in corpus's version; a file or folder's path, sizes and
SHA-256 of the content; the hub repository and revision), the split and ``max_length``. Anything
else gives another key and so another entry: a cache is never reused for other settings.

``<root>`` is the ``cache_dir`` argument, else ``$DIFFUSIONBERT_CACHE``, else
``~/.cache/diffusionbert``. Entries are written to a temporary folder and renamed into place.
With several processes, rank 0 builds and the others load after the caller's barrier.
``diffusionbert.json`` also holds a CRC-32 of every record batch and the vocabulary size:
loading checks both, so flipped bytes are reported as a damaged entry, not a crash mid-run.
Temporary folders left by a killed build (``.<entry>.tmp-<pid>``) are removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import zlib
from collections.abc import Callable
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
from transformers import PreTrainedTokenizerBase

from common.checks import check_output_dir
from common.errors import UsageError
from common.files import is_write_failure, remove_stale_temporaries, write_error
from corpora import toy, wiki
from corpora.loading import HUB, lm1b_source, load_texts
from corpora.tokenize import tokenize_texts

CACHE_ENV = "DIFFUSIONBERT_CACHE"
FORMAT = 2
META = "diffusionbert.json"


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """Where token caches live: ``cache_dir``, else $DIFFUSIONBERT_CACHE, else
    ~/.cache/diffusionbert."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path.home() / ".cache" / "diffusionbert"


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerBase) -> str:
    """SHA-256 of what decides the ids: the backend's serialisation (vocabulary, normaliser,
    pre-tokeniser, model; not the truncation/padding state) or, for a slow tokenizer, its
    vocabulary and init settings; plus the class name."""
    digest = hashlib.sha256(type(tokenizer).__name__.encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        state = json.loads(backend.to_str())
        state.pop("truncation", None)
        state.pop("padding", None)
        digest.update(json.dumps(state, sort_keys=True).encode())
    else:
        digest.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
        settings = {k: v for k, v in tokenizer.init_kwargs.items() if isinstance(v, bool | str)}
        digest.update(json.dumps(settings, sort_keys=True).encode())
    digest.update(json.dumps(tokenizer.all_special_tokens).encode())
    return digest.hexdigest()


def content_hash(file: Path, block: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks (about 1 GB/s on one core)."""
    digest = hashlib.sha256()
    with file.open("rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def _files_fingerprint(path: Path) -> list:
    """(relative path, size, SHA-256 of the content) of a file or of every file under a
    folder, skipping hidden entries (``hf download`` keeps its bookkeeping in ``.cache``) and
    the ``cache-*.arrow`` files ``datasets`` writes beside a saved dataset it maps. Keyed on
    content, so a file edited in place (same size and modification time) gets a new entry."""
    if path.is_file():
        return [[path.name, path.stat().st_size, content_hash(path)]]
    entries = []
    for file in sorted(path.rglob("*")):
        relative = file.relative_to(path)
        hidden = any(part.startswith(".") for part in relative.parts)
        if file.is_file() and not hidden and not re.fullmatch(r"cache-.*\.arrow", file.name):
            entries.append([str(relative), file.stat().st_size, content_hash(file)])
    return entries


def dataset_fingerprint(name: str) -> dict:
    """The identity of ``--dataset name`` that the cache key covers."""
    if name == "toy":
        source = hashlib.sha256(Path(toy.__file__).read_bytes()).hexdigest()
        return {"kind": "toy", "source": source}
    if name == wiki.NAME:
        return {"kind": wiki.NAME, "source": wiki.fingerprint()}
    if name in HUB:
        repo, revision = lm1b_source()
        return {"kind": "hub", "repo": repo, "revision": revision}
    path = Path(name).expanduser().resolve()
    return {"kind": "path", "path": str(path), "files": _files_fingerprint(path)}


def cache_key(
    name: str, split: str, tokenizer: PreTrainedTokenizerBase, max_length: int
) -> tuple[str, dict]:
    """(key, the record it hashes)."""
    record = {
        "format": FORMAT,
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "dataset": dataset_fingerprint(name),
        "split": split,
        "max_length": max_length,
    }
    key = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:20]
    return key, record


def cache_path(
    name: str,
    split: str,
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    cache_dir: str | Path | None = None,
) -> Path:
    """The folder that holds (or will hold) these token ids."""
    key, _ = cache_key(name, split, tokenizer, max_length)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(name).name or "dataset")[:40]
    return cache_root(cache_dir) / "tokens" / f"{stem}-{split}-L{max_length}-{key}"


def _damaged(path: Path, why: str) -> UsageError:
    return UsageError(
        f"token cache {path} is damaged ({' '.join(why.split())[:200]}); delete it "
        f"(rm -r {path}) and run again to rebuild it"
    )


def checksums(data: datasets.Dataset) -> tuple[list[int], int]:
    """(CRC-32 of each arrow chunk's row lengths and token ids, the largest id) of the
    ``input_ids`` column, read from the memory-mapped buffers (about 2 GB/s, no copy of the
    ids)."""
    sums, largest = [], -1
    for chunk in data.data.column("input_ids").chunks:
        offsets = chunk.offsets.to_numpy()
        values = chunk.values.to_numpy(zero_copy_only=False)[offsets[0] : offsets[-1]]
        crc = zlib.crc32(np.ascontiguousarray(np.diff(offsets)).view(np.uint8))
        sums.append(zlib.crc32(np.ascontiguousarray(values).view(np.uint8), crc))
        if len(values):
            largest = max(largest, int(values.max()))
    return sums, largest


def load_cache(path: Path, key: str | None = None) -> datasets.Dataset:
    """A cache entry, memory-mapped, its contents checked against the checksums written with
    it (every record batch) and the vocabulary; a damaged one is a UsageError naming it."""
    try:
        meta = json.loads((path / META).read_text())
    except (OSError, ValueError) as error:
        raise _damaged(path, f"{META}: {error}") from None
    if not isinstance(meta, dict):
        raise _damaged(path, f"{META} is not a JSON object")
    if key is not None and meta.get("key") != key:
        raise _damaged(path, f"{META} records key {meta.get('key')!r}, expected {key!r}")
    try:
        data = datasets.load_from_disk(str(path))
        if not isinstance(data, datasets.Dataset) or data.column_names != ["input_ids"]:
            raise _damaged(path, "expected one input_ids column")
        sums, largest = checksums(data)
    except (OSError, ValueError, pa.ArrowException) as error:
        raise _damaged(path, str(error)) from None
    if len(data) != meta.get("rows"):
        raise _damaged(path, f"{len(data)} rows, {META} says {meta.get('rows')}")
    if sums != meta.get("checksums"):
        bad = sum(a != b for a, b in zip(sums, meta.get("checksums") or [], strict=False))
        raise _damaged(path, f"the token ids changed after it was written ({bad} record batches)")
    vocab = meta.get("vocab")
    if not isinstance(vocab, int) or largest >= vocab:
        raise _damaged(path, f"token id {largest} is outside the vocabulary of {vocab}")
    return data


def write_cache(
    encoded: datasets.Dataset, path: Path, record: dict, key: str, vocab: int | None = None
) -> None:
    """save_to_disk into a temporary folder beside ``path``, with the checksums of what was
    written and ``vocab`` (ids must stay below it; default: one past the largest id), then
    rename it into place. A failed write (disk full, read-only) removes the
    temporary folder and is one line naming the cache location (``--cache_dir``)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        encoded.save_to_disk(str(tmp))
        sums, largest = checksums(datasets.load_from_disk(str(tmp)))
        vocab = largest + 1 if vocab is None else vocab
        meta = {"key": key, "rows": len(encoded), "vocab": vocab, "checksums": sums, **record}
        (tmp / META).write_text(json.dumps(meta, indent=1))
    except Exception as error:
        shutil.rmtree(tmp, ignore_errors=True)
        if not is_write_failure(error):
            raise
        raise write_error(path, error, kept=False, hint="--cache_dir") from None
    try:
        tmp.rename(path)
    except OSError:  # another process finished first; its entry is as good
        shutil.rmtree(tmp, ignore_errors=True)


def cached_token_ids(
    name: str,
    split: str,
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    cache_dir: str | Path | None = None,
    rank: int = 0,
    barrier: Callable[[], None] | None = None,
    num_proc: int | None = None,
) -> datasets.Dataset:
    """The ``input_ids`` of ``split`` of ``--dataset name``, from the cache or tokenised now
    (``num_proc`` processes) and cached; memory-mapped from disk either way.

    Rank 0 builds a missing entry; every rank then calls ``barrier`` (if given) and loads it.
    """
    key, record = cache_key(name, split, tokenizer, max_length)
    path = cache_path(name, split, tokenizer, max_length, cache_dir)
    if rank == 0:
        remove_stale_temporaries(path.parent)
    if rank == 0 and not path.exists():
        check_output_dir(path.parent, "--cache_dir (the token cache)")
        encoded = tokenize_texts(load_texts(name, split), tokenizer, max_length, name, num_proc)
        write_cache(encoded, path, record, key, len(tokenizer))
    if barrier is not None:
        barrier()
    return load_cache(path, key)
