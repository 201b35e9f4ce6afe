"""DiffuSeq-format task folders → ``datasets.Dataset`` of (src, trg), and their token layout.

A folder holds ``train.jsonl``, ``valid.jsonl`` (or ``val.jsonl``) and ``test.jsonl``, one
JSON object per line with string fields ``src`` and ``trg``. The model reads
``[CLS] prompt(source) target [SEP]``: the source part is fixed, the target part is
``max_target_length`` positions, the target's tokens followed by [SEP] up to that length (the
model learns where the text ends; generation cuts at the first [SEP]).
"""

from __future__ import annotations

from pathlib import Path

import datasets
from transformers import PreTrainedTokenizerBase

from common.errors import UsageError
from conditional_data import toy, wiki_tasks
from conditional_data.tasks import Task, get_task
from corpora.loading import jsonl_records

SPLIT_FILES = {
    "train": ("train.jsonl",),
    "valid": ("valid.jsonl", "val.jsonl"),
    "test": ("test.jsonl",),
}
SPLIT_ALIASES = {"validation": "valid", "val": "valid", "dev": "valid"}


def read_jsonl(path: Path) -> dict[str, list[str]]:
    """``src``/``trg`` columns of a DiffuSeq jsonl file; a bad line is named by file and line."""
    records = list(jsonl_records(path, ("src", "trg")))
    return {"src": [r["src"] for r in records], "trg": [r["trg"] for r in records]}


def _split_file(task: Task, split: str, data_dir: str | None) -> Path:
    if data_dir is None:
        raise UsageError(
            f"--task {task.name} needs --data_dir: the DiffuSeq folder {task.folder}/ with "
            "train.jsonl, valid.jsonl and test.jsonl (see docs/seq2seq.md); --task toy, "
            "wiki-keywords and wiki-next need no data"
        )
    folder = Path(data_dir).expanduser()
    if not folder.is_dir():
        raise UsageError(
            f"--data_dir {folder}: no such folder; download DiffuSeq's processed datasets (see "
            f"docs/seq2seq.md) and pass the path of its {task.folder}/ folder"
        )
    for name in SPLIT_FILES[split]:
        if (folder / name).is_file():
            return folder / name
    raise UsageError(
        f"--data_dir {folder} has no {' or '.join(SPLIT_FILES[split])} for split {split!r}"
    )


def load_pairs(
    task_name: str, split: str = "train", data_dir: str | None = None
) -> datasets.Dataset:
    """The ``split`` (train, valid, test) of a task as a dataset with ``src`` and ``trg``."""
    task = get_task(task_name)
    split = SPLIT_ALIASES.get(split, split)
    if split not in SPLIT_FILES:
        raise UsageError(f"--split {split!r} is unknown: choose train, valid or test")
    if task.name == "toy" and data_dir is None:
        return datasets.Dataset.from_dict(toy.pairs(split))
    if task.name in wiki_tasks.BUILDERS and data_dir is None:
        return datasets.Dataset.from_dict(wiki_tasks.pairs(task.name, split))
    return datasets.Dataset.from_dict(read_jsonl(_split_file(task, split, data_dir)))


def source_budget(task: Task, tokenizer: PreTrainedTokenizerBase, max_length: int,
                  max_target_length: int, fixed_length: bool = False,
                  ) -> tuple[list[int], list[int], int]:  # fmt: skip
    """Prompt prefix and suffix ids, and how many source tokens fit beside them.
    ``fixed_length``: ``max_length`` is a checkpoint's (no ``--max_length`` flag to raise)."""
    if max_target_length < 2:
        raise UsageError(
            f"--max_target_length must be ≥ 2 (a token and the end [SEP]), got {max_target_length}"
        )
    prefix = tokenizer(task.prefix, add_special_tokens=False)["input_ids"] if task.prefix else []
    suffix = tokenizer(task.suffix, add_special_tokens=False)["input_ids"] if task.suffix else []
    budget = max_length - max_target_length - len(prefix) - len(suffix)
    if budget < 1:
        prompt = len(prefix) + len(suffix)
        if fixed_length:
            raise UsageError(
                f"--max_target_length {max_target_length} leaves no room for the source in the "
                f"checkpoint's max_length {max_length} (the {task.name} prompt takes {prompt} "
                f"tokens); pass --max_target_length ≤ {max_length - prompt - 1}"
            )
        raise UsageError(
            f"--max_length {max_length} leaves no room for the source: the target takes "
            f"--max_target_length {max_target_length} and the {task.name} prompt "
            f"{prompt} tokens; raise --max_length or lower --max_target_length"
        )
    return prefix, suffix, budget


def encode_sources(
    sources: list[str],
    tokenizer: PreTrainedTokenizerBase,
    task_name: str,
    max_length: int,
    max_target_length: int,
    fixed_length: bool = False,
) -> list[list[int]]:
    """Prompted source ids (no special tokens), the source text truncated to fit
    (``fixed_length``: ``max_length`` is the checkpoint's, see ``source_budget``)."""
    prefix, suffix, budget = source_budget(
        get_task(task_name), tokenizer, max_length, max_target_length, fixed_length
    )
    ids = tokenizer(sources, add_special_tokens=False)["input_ids"] if sources else []
    return [prefix + row[:budget] + suffix for row in ids]


def encode_pairs(
    pairs: datasets.Dataset,
    tokenizer: PreTrainedTokenizerBase,
    task_name: str,
    max_length: int,
    max_target_length: int,
) -> datasets.Dataset:
    """Token layout for training: ``input_ids`` = prompted source + target region, and
    ``source_length``. Pairs with an empty source or target are dropped."""
    source_budget(get_task(task_name), tokenizer, max_length, max_target_length)
    sep = tokenizer.sep_token_id

    def encode(batch: dict) -> dict:
        sources = encode_sources(batch["src"], tokenizer, task_name, max_length, max_target_length)
        targets = tokenizer(batch["trg"], add_special_tokens=False)["input_ids"]
        keep = [bool(s.strip()) and len(t) > 0 for s, t in zip(batch["src"], targets, strict=True)]
        rows, lengths = [], []
        for source, target, ok in zip(sources, targets, keep, strict=True):
            if ok:
                kept = target[: max_target_length - 1]
                rows.append(source + kept + [sep] * (max_target_length - len(kept)))
                lengths.append(len(source))
        return {"input_ids": rows, "source_length": lengths}

    encoded = pairs.map(
        encode, batched=True, remove_columns=pairs.column_names, desc="tokenising pairs"
    )
    if len(encoded) == 0:
        raise UsageError(
            f"--task {task_name}: no pair with a non-empty src and trg left after tokenising"
        )
    return encoded
