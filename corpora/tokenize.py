"""Tokenising a corpus: ``tokenize_texts`` turns a ``text`` column into ``input_ids`` (and the
word counts the per-word perplexity needs)."""

from __future__ import annotations

import os

import datasets
from transformers import PreTrainedTokenizerBase

from common.errors import UsageError
from corpora.loading import one_line


def id_dtype(vocab_size: int) -> str:
    """The narrowest arrow integer type that holds every id: uint16 for BERT's 30522."""
    return "uint16" if vocab_size <= 2**16 else "int32"


def default_num_proc(num_rows: int) -> int | None:
    """Worker processes for tokenising ``num_rows`` texts: None (in-process) for small sets."""
    if num_rows < 100_000:
        return None
    return max(1, min(os.cpu_count() or 1, 16))


def tokenize_texts(
    dataset: datasets.Dataset,
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    name: str,
    num_proc: int | None = None,
    count_words: bool = False,
) -> datasets.Dataset:
    """Token ids without special tokens, truncated to ``max_length``; empty rows dropped.

    Returns a dataset with the column ``input_ids`` (lists of uint16, or int32 for a
    vocabulary over 65536). ``num_proc`` worker processes tokenise in parallel (default: one
    per core for 100,000 rows or more). With ``count_words`` also ``num_words``: the
    whitespace-separated words of the text as the dataset writes it (punctuation included,
    the unit of the DiffusionBERT paper's perplexity), counting only the text that the kept
    tokens cover when a row is truncated.
    """
    if num_proc is None:
        num_proc = default_num_proc(len(dataset))
    columns = {"input_ids": datasets.List(datasets.Value(id_dtype(len(tokenizer))))}
    if count_words:
        columns["num_words"] = datasets.Value("int32")
    features = datasets.Features(columns)

    def encode(batch: dict, rows: list[int]) -> dict:
        missing = next((row for row, text in zip(rows, batch["text"], strict=True)
                        if not isinstance(text, str)), None)  # fmt: skip
        if missing is not None:
            raise UsageError(
                f"--dataset {name}: column 'text' is null at row {missing}; drop or fill that row"
            )
        encoded = tokenizer(
            batch["text"],
            add_special_tokens=False,
            truncation=True,
            max_length=max_length,
            return_offsets_mapping=count_words,
        )
        kept = [i for i, row in enumerate(encoded["input_ids"]) if row]
        out = {"input_ids": [encoded["input_ids"][i] for i in kept]}
        if count_words:
            out["num_words"] = [
                len(batch["text"][i][: encoded["offset_mapping"][i][-1][1]].split()) for i in kept
            ]
        return out

    try:
        encoded = dataset.map(
            encode,
            batched=True,
            with_indices=True,
            batch_size=10_000,
            remove_columns=dataset.column_names,
            features=features,
            num_proc=num_proc,
            desc="tokenising",
        )
    except UnicodeDecodeError as error:
        raise UsageError(
            f"--dataset {name}: column 'text' is not UTF-8 text ({one_line(error)}); "
            "convert the file to UTF-8"
        ) from None
    if len(encoded) == 0:
        raise UsageError(
            f"--dataset {name}: no non-empty sentence left after tokenising; check the file"
        )
    return encoded
