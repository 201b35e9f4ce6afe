"""Token counts of a training split (word_freq.py) and their validation when loaded."""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import datasets
import numpy as np
import pyarrow.compute as pc
import torch
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from common.errors import UsageError
from common.files import atomic_path


def count_tokens(
    dataset: datasets.Dataset,
    tokenizer: PreTrainedTokenizerBase,
    batch_size: int = 1000,
) -> torch.Tensor:
    """Occurrences of every token id in the ``text`` column, no special tokens added.

    Returns an int64 tensor of shape (vocab,), vocab = max(len(tokenizer), config vocab).
    """
    vocab = len(tokenizer)
    counts = np.zeros(vocab, dtype=np.int64)
    for start in tqdm(range(0, len(dataset), batch_size), desc="counting tokens", unit="batch"):
        texts = dataset[start : start + batch_size]["text"]
        ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
        flat = np.fromiter((i for row in ids for i in row), dtype=np.int64)
        counts += np.bincount(flat, minlength=vocab)
    return torch.from_numpy(counts)


def count_ids(encoded: datasets.Dataset, vocab: int) -> torch.Tensor:
    """Occurrences of every id in the ``input_ids`` column of a (cached) token dataset, all
    rows of its table: ``np.bincount`` over each arrow chunk's flat values, no Python lists.

    Returns an int64 tensor of shape (vocab,).
    """
    counts = np.zeros(vocab, dtype=np.int64)
    for chunk in encoded.data.column("input_ids").chunks:
        values = pc.list_flatten(chunk).to_numpy(zero_copy_only=False)
        counts += np.bincount(values, minlength=vocab)[:vocab]
    return torch.from_numpy(counts)


def save_counts(counts: torch.Tensor, path: Path) -> None:
    """torch.save to a temporary name, then rename."""
    with atomic_path(path) as tmp:
        torch.save(counts, tmp)


def default_counts_path(model: str, dataset: str, task: str | None = None) -> Path:
    """Where word_freq.py writes, and main.py looks, when no file is named:
    ``word_freq/<model>_<dataset>.pt`` (``<model>_<task>_seq2seq.pt`` for a seq2seq task)."""
    name = f"{task}_seq2seq" if task else Path(dataset).stem
    return Path("word_freq") / f"{Path(model).name}_{name}.pt"


def load_counts(
    path: str | Path, vocab_size: int, argument: str = "--word_freq_file"
) -> torch.Tensor:
    """An int64 (vocab_size,) count tensor written by word_freq.py, checked."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(
            f"{argument} {path}: no such file; create it with `python word_freq.py "
            "--model_name_or_path <model> --dataset <dataset>` (it prints where it wrote)"
        )
    try:
        with warnings.catch_warnings():  # torch's pickle-protocol advice: the error says it
            warnings.simplefilter("ignore", UserWarning)
            counts = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # never repeat torch's advice to pass weights_only=False: that would run the file's code
        raise UsageError(
            f"{argument} {path}: not a tensor file written by word_freq.py (it holds something "
            "other than tensors, or is not a torch file); rerun word_freq.py"
        ) from None
    except Exception as error:  # noqa: BLE001 (a text or torn file: RuntimeError, EOFError...)
        why = (str(error).splitlines() or [type(error).__name__])[0][:150]
        raise UsageError(
            f"{argument} {path}: not a tensor file written by word_freq.py ({why}); rerun "
            "word_freq.py"
        ) from None
    if not isinstance(counts, torch.Tensor) or counts.dim() != 1 or counts.is_floating_point():
        raise UsageError(f"{argument} {path}: expected a 1-d integer tensor of token counts")
    if counts.numel() != vocab_size:
        raise UsageError(
            f"{argument} {path} has {counts.numel()} entries but the model's vocabulary has "
            f"{vocab_size}: it was counted with another tokenizer; rerun word_freq.py with "
            "this --model_name_or_path"
        )
    if (counts < 0).any():
        raise UsageError(f"{argument} {path}: negative counts; the file is damaged")
    if int(counts.sum()) == 0:
        raise UsageError(
            f"{argument} {path}: every count is zero (was it counted from an empty dataset?); "
            "rerun word_freq.py on the training split"
        )
    return counts.to(torch.int64)


def check_counted(counts: torch.Tensor, source: str) -> None:
    """word_freq.py's check before it writes: an empty or whitespace-only split counts
    nothing, and all-zero counts would silently turn the spindle schedule off."""
    if int(counts.sum()) == 0:
        raise UsageError(
            f"{source} has no tokens (empty or whitespace only); nothing to count, and all-zero "
            "counts would turn the spindle schedule off: pass the training data"
        )


def length_histogram(encoded: datasets.Dataset, max_length: int) -> torch.Tensor:
    """How many sequences of the ``input_ids`` column have each length: int64 (max_length + 1,).

    Only the dataset's rows (a dataset from ``select`` or ``holdout`` shares its table).
    """
    lengths = pc.list_value_length(encoded.data.column("input_ids")).to_numpy()
    if encoded._indices is not None:
        lengths = lengths[encoded._indices.column(0).to_numpy()]
    return torch.bincount(torch.from_numpy(lengths.astype("int64")), minlength=max_length + 1)
