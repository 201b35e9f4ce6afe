"""Unconditional text datasets as ``datasets.Dataset`` objects with a ``text`` column.

``--dataset`` is ``toy`` (embedded, no download), ``lm1b`` (hub), a ``.txt`` file (one
sentence per line), a ``.jsonl`` file (a ``text`` field per line), a folder with
``<split>.txt`` / ``<split>.jsonl``, or a folder written by ``Dataset(Dict).save_to_disk``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import datasets
from transformers import PreTrainedTokenizerBase

from common.errors import UsageError
from common.hub import hub_reachable
from corpora import toy

HUB = {"lm1b": "lm1b"}


def jsonl_records(path: Path, fields: tuple[str, ...]) -> Iterator[dict]:
    """The JSON objects of a .jsonl file (blank lines skipped), each with string ``fields``; a
    bad line is reported with the file and line number."""
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise UsageError(
                    f"{path}:{number}: not valid JSON ({error.msg}); fix or delete that line"
                ) from None
            if not isinstance(record, dict) or not all(
                isinstance(record.get(f), str) for f in fields
            ):
                names = " and ".join(f'"{f}"' for f in fields)
                raise UsageError(
                    f"{path}:{number}: expected an object with string {names} "
                    f"field{'s' if len(fields) > 1 else ''}, got {line.strip()[:80]!r}"
                )
            yield record


def _from_file(path: Path) -> datasets.Dataset:
    if path.suffix == ".txt":
        texts = path.read_text(encoding="utf-8").splitlines()
        return datasets.Dataset.from_dict({"text": [t for t in texts if t.strip()]})
    if path.suffix in (".jsonl", ".json"):
        for _ in jsonl_records(path, ("text",)):
            pass
        return datasets.load_dataset("json", data_files=str(path), split="train")
    raise UsageError(f"--dataset {path}: use a .txt or .jsonl file, or a dataset folder")


def _from_folder(path: Path, split: str) -> datasets.Dataset:
    for suffix in (".txt", ".jsonl"):
        if (path / f"{split}{suffix}").is_file():
            return _from_file(path / f"{split}{suffix}")
    if not any((path / name).is_file() for name in ("dataset_dict.json", "dataset_info.json")):
        raise UsageError(
            f"--dataset {path}: the folder has neither {split}.txt, {split}.jsonl nor a dataset "
            "saved with save_to_disk"
        )
    loaded = datasets.load_from_disk(str(path))
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise UsageError(f"--dataset {path} has no split {split!r}; it has {', '.join(loaded)}")
        loaded = loaded[split]
    return loaded


def _from_hub(name: str, split: str) -> datasets.Dataset:
    repo = HUB[name]
    if not hub_reachable():
        raise UsageError(
            f"--dataset {name}: tried the Hugging Face hub dataset {repo!r}, but the hub cannot be "
            'reached from this machine. On a machine with internet run `python -c "import '
            f"datasets; datasets.load_dataset('{repo}').save_to_disk('{name}')\"`, copy the folder "
            f"here and pass --dataset ./{name} (or a .txt/.jsonl file; --dataset toy needs no "
            "download)"
        )
    try:
        return datasets.load_dataset(repo, split=split)
    except (OSError, ValueError, ConnectionError) as error:
        message = f"--dataset {name}: loading {repo!r} from the hub failed: {error}"
        raise UsageError(message) from None


def load_texts(name: str, split: str = "train") -> datasets.Dataset:
    """The ``split`` of dataset ``name`` with a ``text`` column (see the module docstring).

    A single file is its own split whatever ``split`` says.
    """
    if name == "toy":
        return datasets.Dataset.from_dict({"text": toy.split(split)})
    if name in HUB:
        dataset = _from_hub(name, split)
    else:
        path = Path(name).expanduser()
        if path.is_file():
            dataset = _from_file(path)
        elif path.is_dir():
            dataset = _from_folder(path, split)
        else:
            raise UsageError(
                f"--dataset {name}: not a file or folder, and not one of toy, "
                f"{', '.join(HUB)}; pass a .txt/.jsonl file or a dataset folder"
            )
    if "text" not in dataset.column_names:
        raise UsageError(
            f"--dataset {name}: no 'text' column (columns: {', '.join(dataset.column_names)})"
        )
    return dataset


def tokenize_texts(
    dataset: datasets.Dataset,
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    name: str,
) -> datasets.Dataset:
    """Token ids without special tokens, truncated to ``max_length``; empty rows dropped.

    Returns a dataset with one column, ``input_ids``.
    """

    def encode(batch: dict) -> dict:
        ids = tokenizer(
            batch["text"],
            add_special_tokens=False,
            truncation=True,
            max_length=max_length,
        )["input_ids"]
        return {"input_ids": ids}

    encoded = dataset.map(
        encode, batched=True, remove_columns=dataset.column_names, desc="tokenising"
    )
    encoded = encoded.filter(
        lambda batch: [len(ids) > 0 for ids in batch["input_ids"]], batched=True
    )
    if len(encoded) == 0:
        raise UsageError(
            f"--dataset {name}: no non-empty sentence left after tokenising; check the file"
        )
    return encoded
