"""Inputs that are not text: every such dataset is one line naming the file (and column), an
interrupted download is refused, and an empty shard is valid, not damaged."""

import json

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from common.errors import UsageError
from corpora import load_texts, tokenize_texts, wiki


def shards(folder, *columns):
    """``folder/train/000N.parquet``, one per array of the ``text`` column."""
    (folder / "train").mkdir(parents=True)
    for number, column in enumerate(columns):
        pq.write_table(pa.table({"text": column}), folder / "train" / f"{number:04d}.parquet")
    return folder


def error_of(name, split="train"):
    with pytest.raises(UsageError) as info:
        load_texts(str(name), split)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_a_shard_whose_text_column_holds_integers_is_refused_by_name(tmp_path):
    folder = shards(tmp_path / "d", pa.array(["a b", "c d"]), pa.array([1, 2], pa.int64()))
    message = error_of(folder)
    assert "0001.parquet" in message and "'text' holds int64, not text" in message


def test_a_binary_text_column_is_refused_by_name(tmp_path):
    folder = shards(tmp_path / "d", pa.array([b"\xff\xfe", b"ok"], pa.binary()))
    message = error_of(folder)
    assert "0000.parquet" in message and "binary" in message


def test_null_texts_are_refused_naming_file_and_column(tmp_path):
    folder = shards(tmp_path / "d", pa.array(["a b", None, "c"], pa.string()))
    message = error_of(folder)
    assert "0000.parquet" in message and "'text' has 1 null" in message


def test_an_interrupted_hf_download_is_refused(tmp_path):
    folder = shards(tmp_path / "d", pa.array(["a b", "c d"]))
    partial = folder / ".cache" / "huggingface" / "download" / "train"
    partial.mkdir(parents=True)
    (partial / "0001.parquet.0a1b2c.incomplete").write_bytes(b"PAR1")
    message = error_of(folder)
    assert "interrupted download" in message and "0001.parquet" in message


def test_a_shard_with_zero_rows_is_skipped_not_called_damaged(tmp_path):
    folder = shards(tmp_path / "d", pa.array([], pa.string()), pa.array(["a b", "c d", "e"]))
    assert load_texts(str(folder), "train")["text"] == ["a b", "c d", "e"]
    empty = shards(tmp_path / "e", pa.array([], pa.string()))
    assert "0 rows" in error_of(empty)


def test_a_null_text_in_a_saved_dataset_names_the_row(tmp_path, tokenizer):
    data = datasets.Dataset.from_dict({"text": ["a b", None, "c"]})
    with pytest.raises(UsageError, match="'text' is null at row 1") as info:
        tokenize_texts(data, tokenizer, 8, "saved")
    assert "--dataset saved" in str(info.value)


def test_a_saved_dataset_with_a_non_text_column_is_refused(tmp_path):
    datasets.Dataset.from_dict({"text": [1, 2, 3]}).save_to_disk(str(tmp_path / "saved"))
    assert "not text" in error_of(tmp_path / "saved")


@pytest.mark.parametrize("content", [[{"title": "A", "extract": "B."}], "text", 3])
def test_wiki_summaries_in_another_layout_is_one_line(tmp_path, monkeypatch, content):
    path = tmp_path / "summaries_en-us.json"
    path.write_text(json.dumps(content))
    monkeypatch.setattr(wiki, "data_file", lambda: path)
    wiki.articles.cache_clear()
    try:
        message = error_of(wiki.NAME)
    finally:
        wiki.articles.cache_clear()
    assert str(path) in message and "reinstall" in message


def test_a_string_column_with_bytes_that_are_not_utf8_names_dataset_and_column(tmp_path, tokenizer):
    raw = pa.array([b"ok text", b"bad \xff\xfe here"], pa.binary())
    column = pa.Array.from_buffers(pa.string(), 2, raw.buffers()[:3])  # unchecked bytes
    folder = shards(tmp_path / "d", column)
    with pytest.raises(UsageError) as info:
        tokenize_texts(load_texts(str(folder), "train"), tokenizer, 8, str(folder))
    message = str(info.value)
    assert f"--dataset {folder}" in message and "'text' is not UTF-8" in message
    assert "\n" not in message
