"""The training and dev sets main.py trains on, and O(batch) fetching of micro-batches."""

from __future__ import annotations

import hashlib
import math
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import torch
from datasets.table import InMemoryTable
from transformers import PreTrainedTokenizerBase

from common.errors import UsageError
from conditional_data import encode_pairs, load_pairs
from corpora.cache import cached_token_ids


def with_rows(data: datasets.Dataset, rows: np.ndarray, tag: str) -> datasets.Dataset:
    """``data.select(rows)`` without the Python list ``select`` builds: the same memory-mapped
    table behind an in-memory uint64 indices table (8 bytes a row)."""
    rows = np.ascontiguousarray(rows, dtype=np.int64).view(np.uint64)  # no copy: rows ≥ 0
    indices = InMemoryTable(pa.table({"indices": pa.array(rows)}))
    fingerprint = hashlib.sha256(f"{data._fingerprint}:{tag}".encode()).hexdigest()[:16]
    return datasets.Dataset(
        data.data, info=data.info, split=data.split, indices_table=indices, fingerprint=fingerprint
    )


def holdout(
    data: datasets.Dataset, size: int | float, seed: int
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """(train, dev): ``size`` rows (a fraction if a float) drawn with ``seed`` are the dev set,
    the rest the training set, each in ascending row order."""
    n = len(data)
    n_dev = size if isinstance(size, int) else math.ceil(size * n)
    if n < 2 or not 1 <= n_dev < n:
        raise UsageError(f"--dev_size {size} leaves no training data ({n} sequences)")
    dev = np.sort(np.random.default_rng(seed).choice(n, size=n_dev, replace=False))
    held = np.zeros(n, dtype=bool)
    held[dev] = True
    train = np.flatnonzero(~held)
    del held
    return with_rows(data, train, f"train:{seed}:{n_dev}"), with_rows(
        data, dev, f"dev:{seed}:{n_dev}"
    )


def training_data(
    tokenizer: PreTrainedTokenizerBase,
    dataset: str,
    task: str | None,
    data_dir: str | None,
    max_length: int,
    max_target_length: int,
    dev_size: float,
    data_seed: int,
    rank: int = 0,
    world: int = 1,
    barrier: Callable[[], None] | None = None,
    cache_dir: str | Path | None = None,
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """(train, dev) with ``input_ids`` (and ``source_length`` for a seq2seq ``task``).

    Unconditional: the training split's token ids come from the on-disk cache
    (``corpora.cache``; rank 0 of ``world`` processes tokenises a missing entry while the
    others wait in ``barrier``), and ``dev_size`` sequences (a fraction if < 1) drawn with
    ``data_seed`` (not the training seed: every training seed is scored on the same dev set)
    are held out. Seq2seq: the dev set is the first ``dev_size`` pairs of the task's
    valid split.
    """
    size = int(dev_size) if dev_size >= 1 else dev_size
    if task is not None:
        train = encode_pairs(
            load_pairs(task, "train", data_dir), tokenizer, task, max_length, max_target_length
        )
        dev = encode_pairs(
            load_pairs(task, "valid", data_dir), tokenizer, task, max_length, max_target_length
        )
        keep = size if isinstance(size, int) else max(1, round(size * len(dev)))
        return train, dev.select(range(min(keep, len(dev))))
    if world > 1 and barrier is None:
        raise ValueError("training_data: several processes need a barrier callable")
    data = cached_token_ids(
        dataset, "train", tokenizer, max_length, cache_dir=cache_dir, rank=rank, barrier=barrier
    )
    return holdout(data, size, data_seed)


class _Chunks:
    """Zero-copy numpy views of one column of a (memory-mapped) arrow table, chunk by chunk,
    and where each chunk starts: row r is element r - starts[c] of chunk c."""

    def __init__(self, column: pa.ChunkedArray, lists: bool):
        lengths = [len(chunk) for chunk in column.chunks]
        self.starts = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
        if lists:
            self.offsets = [c.offsets.to_numpy() for c in column.chunks]
            self.values = [c.values.to_numpy(zero_copy_only=False) for c in column.chunks]
        else:
            self.values = [c.to_numpy(zero_copy_only=False) for c in column.chunks]

    def locate(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        chunk = np.searchsorted(self.starts, rows, side="right") - 1
        return chunk, rows - self.starts[chunk]


class _Reader:
    """What ``fetch`` needs of a dataset, built once per dataset object."""

    def __init__(self, dataset: datasets.Dataset):
        table = dataset.data.table
        self.ids = _Chunks(table.column("input_ids"), lists=True)
        self.sources = None
        if "source_length" in table.column_names:
            self.sources = _Chunks(table.column("source_length"), lists=False)
        indices = dataset._indices
        if indices is None:
            self.rows = None
        else:  # uint64 row numbers < 2**63: an int64 view, no copy for a single chunk
            rows = indices.column(0).to_numpy()
            self.rows = rows.view(np.int64) if rows.dtype == np.uint64 else rows


_READERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def row_lengths(dataset: datasets.Dataset) -> np.ndarray:
    """The token count of every row of ``dataset`` (len(dataset),) int32, from the arrow
    offsets of its ``input_ids`` (vectorised, no row is read)."""
    reader = _READERS.get(dataset)
    if reader is None:
        reader = _READERS[dataset] = _Reader(dataset)
    lengths = np.concatenate(
        [np.diff(offsets).astype(np.int32) for offsets in reader.ids.offsets] or [np.zeros(0)]
    ).astype(np.int32, copy=False)
    return lengths if reader.rows is None else lengths[reader.rows]


def fetch(
    dataset: datasets.Dataset, indices: Sequence[int], pad_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows ``indices`` as x0 (B, L) long, right-padded with ``pad_id``, and target_mask (B, L)
    bool: the real tokens minus each row's first ``source_length`` (seq2seq sets), exactly as
    ``collate_rows`` does. Reads numpy views of the memory-mapped arrow buffers (built on the
    first call for a dataset): O(batch) host work, whatever the dataset's size."""
    reader = _READERS.get(dataset)
    if reader is None:
        reader = _READERS[dataset] = _Reader(dataset)
    rows = np.asarray(indices, dtype=np.int64)
    if reader.rows is not None:
        rows = reader.rows[rows]
    ids = reader.ids
    chunks, local = ids.locate(rows)
    pieces = []
    for c, i in zip(chunks.tolist(), local.tolist(), strict=True):
        offsets = ids.offsets[c]
        pieces.append(ids.values[c][offsets[i] : offsets[i + 1]])
    lengths = np.array([len(p) for p in pieces], dtype=np.int64)
    positions = np.arange(int(lengths.max()))
    mask = positions < lengths[:, None]
    x0 = np.full(mask.shape, pad_id, dtype=np.int64)
    x0[mask] = np.concatenate(pieces)
    if reader.sources is not None:
        chunks, local = reader.sources.locate(rows)
        sources = np.array(
            [
                reader.sources.values[c][i]
                for c, i in zip(chunks.tolist(), local.tolist(), strict=True)
            ],
            dtype=np.int64,
        )
        mask &= positions >= sources[:, None]
    return torch.from_numpy(x0), torch.from_numpy(mask)
