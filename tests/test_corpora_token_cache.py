"""The token cache does not trust its contents: checksums per record batch and ids below the
vocabulary are checked on load, and the key follows the data's content, not its size and
modification time."""

import json
import os

import datasets
import numpy as np
import pytest

from common.errors import UsageError
from corpora.cache import META, cache_key, cache_path, cached_token_ids, checksums, load_cache


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("the cat sat on the mat .\na dog barked loudly today .\n" * 30)
    return path


@pytest.fixture
def entry(corpus, tokenizer, tmp_path):
    cached_token_ids(str(corpus), "train", tokenizer, 8, cache_dir=tmp_path / "cache")
    return cache_path(str(corpus), "train", tokenizer, 8, tmp_path / "cache")


def arrow_file(entry):
    (file,) = entry.glob("data-*.arrow")
    return file


def flip_token(entry, old: int, new: int) -> None:
    """Replace the first little-endian uint16 ``old`` in the arrow file by ``new``."""
    file = arrow_file(entry)
    data = bytearray(file.read_bytes())
    at = data.find(np.uint16(old).tobytes())
    assert at > 0
    data[at : at + 2] = np.uint16(new).tobytes()
    file.write_bytes(bytes(data))


def test_flipped_bytes_in_token_ids_are_a_damaged_entry(entry, tokenizer):
    cat = tokenizer.convert_tokens_to_ids("cat")
    flip_token(entry, cat, cat + 1)  # a valid id: only the checksum can tell
    with pytest.raises(UsageError, match="token ids changed after it was written") as info:
        load_cache(entry)
    assert str(entry) in str(info.value) and "rm -r" in str(info.value)


def test_an_id_outside_the_vocabulary_is_refused_even_with_matching_checksums(entry, tokenizer):
    flip_token(entry, tokenizer.convert_tokens_to_ids("cat"), len(tokenizer) + 5)
    meta = json.loads((entry / META).read_text())
    # the checksums of the edited file, as if it had been written so
    meta["checksums"] = checksums(datasets.load_from_disk(str(entry)))[0]
    (entry / META).write_text(json.dumps(meta))
    with pytest.raises(UsageError, match=f"outside the vocabulary of {len(tokenizer)}"):
        load_cache(entry)


def test_a_file_edited_in_place_with_the_same_size_and_mtime_gets_a_new_entry(
    corpus, tokenizer, tmp_path
):
    cache = tmp_path / "cache"
    before = cached_token_ids(str(corpus), "train", tokenizer, 8, cache_dir=cache)
    stat = corpus.stat()
    corpus.write_text(corpus.read_text().replace("cat", "dog"))
    os.utime(corpus, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert corpus.stat().st_size == stat.st_size
    after = cached_token_ids(str(corpus), "train", tokenizer, 8, cache_dir=cache)
    dog = tokenizer.convert_tokens_to_ids("dog")
    assert sum(row.count(dog) for row in after["input_ids"]) > sum(
        row.count(dog) for row in before["input_ids"]
    )
    assert len(list((cache / "tokens").iterdir())) == 2


def test_touching_or_chmod_of_a_file_keeps_its_entry(corpus, tokenizer, tmp_path):
    key = cache_key(str(corpus), "train", tokenizer, 8)[0]
    os.utime(corpus, ns=(1, 1))
    corpus.chmod(0o600)
    assert cache_key(str(corpus), "train", tokenizer, 8)[0] == key


def test_a_meta_file_that_is_not_an_object_is_damaged(entry):
    (entry / META).write_text("[1, 2]")
    with pytest.raises(UsageError, match="is damaged"):
        load_cache(entry)


def test_a_truncated_arrow_file_is_damaged(entry):
    file = arrow_file(entry)
    file.write_bytes(file.read_bytes()[:200])
    with pytest.raises(UsageError, match="is damaged") as info:
        load_cache(entry)
    assert "\n" not in str(info.value)
