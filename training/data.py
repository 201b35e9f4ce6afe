"""The training and dev sets main.py trains on: unconditional text or seq2seq pairs."""

from __future__ import annotations

import datasets
from transformers import PreTrainedTokenizerBase

from common.errors import UsageError
from conditional_data import encode_pairs, load_pairs
from corpora import load_texts, tokenize_texts


def training_data(
    tokenizer: PreTrainedTokenizerBase,
    dataset: str,
    task: str | None,
    data_dir: str | None,
    max_length: int,
    max_target_length: int,
    dev_size: float,
    seed: int,
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """(train, dev) with ``input_ids`` (and ``source_length`` for a seq2seq ``task``).

    Unconditional: ``dev_size`` sequences (a fraction if < 1) are held out of the training
    split. Seq2seq: the dev set is the first ``dev_size`` pairs of the task's valid split.
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
    data = tokenize_texts(load_texts(dataset, "train"), tokenizer, max_length, dataset)
    if len(data) < 2 or (isinstance(size, int) and size >= len(data)):
        raise UsageError(f"--dev_size {dev_size} leaves no training data ({len(data)} sequences)")
    split = data.train_test_split(test_size=size, seed=seed, shuffle=True)
    return split["train"], split["test"]
