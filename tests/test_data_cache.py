"""The on-disk token cache, O(batch) fetching, the held-out dev set and id counting."""

import json

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from common.errors import UsageError
from corpora import load_texts, tokenize_texts
from corpora.cache import cache_key, cache_path, cache_root, cached_token_ids, load_cache
from corpora.collate import collate_rows
from corpora.counting import count_ids, count_tokens, length_histogram
from training.batches import BatchPlan
from training.data import fetch, holdout, training_data


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("the cat sat on the mat .\n\na dog barked loudly today .\nhello world .\n" * 20)
    return path


def test_cache_is_built_once_then_memory_mapped_with_the_tokenizer_ids(tmp_path, corpus, tokenizer):
    cache = tmp_path / "cache"
    data = cached_token_ids(str(corpus), "train", tokenizer, 6, cache_dir=cache)
    assert data.features["input_ids"].feature.dtype == "uint16"
    expected = tokenize_texts(load_texts(str(corpus)), tokenizer, 6, "c")["input_ids"]
    assert [list(r) for r in data["input_ids"]] == [list(r) for r in expected]
    assert len(data) == 60 and all(0 < len(r) <= 6 for r in data["input_ids"])
    path = cache_path(str(corpus), "train", tokenizer, 6, cache)
    assert path.is_dir() and all(str(path) in f["filename"] for f in data.cache_files)
    mtime = (path / "diffusionbert.json").stat().st_mtime_ns
    again = cached_token_ids(str(corpus), "train", tokenizer, 6, cache_dir=cache)
    assert (path / "diffusionbert.json").stat().st_mtime_ns == mtime and len(again) == 60


def test_another_tokenizer_max_length_or_file_content_gets_another_entry(
    tmp_path, corpus, tokenizer
):
    cache = tmp_path / "cache"
    key, _ = cache_key(str(corpus), "train", tokenizer, 6)
    assert cache_key(str(corpus), "train", tokenizer, 7)[0] != key
    assert cache_key(str(corpus), "test", tokenizer, 6)[0] != key
    cased_dir = tmp_path / "cased"
    tokenizer.save_pretrained(cased_dir)
    config = json.loads((cased_dir / "tokenizer_config.json").read_text())
    config["do_lower_case"] = False  # same vocabulary, other ids for "The"
    (cased_dir / "tokenizer_config.json").write_text(json.dumps(config))
    cased = AutoTokenizer.from_pretrained(cased_dir)
    assert cache_key(str(corpus), "train", cased, 6)[0] != key

    short = cached_token_ids(str(corpus), "train", tokenizer, 3, cache_dir=cache)
    long = cached_token_ids(str(corpus), "train", tokenizer, 6, cache_dir=cache)
    assert max(len(r) for r in short["input_ids"]) == 3
    assert max(len(r) for r in long["input_ids"]) == 6
    upper = tmp_path / "upper.txt"
    upper.write_text("The Cat SAT .\n")
    lower_ids = cached_token_ids(str(upper), "train", tokenizer, 8, cache_dir=cache)["input_ids"]
    cased_ids = cached_token_ids(str(upper), "train", cased, 8, cache_dir=cache)["input_ids"]
    assert list(lower_ids[0]) == tokenizer("The Cat SAT .", add_special_tokens=False).input_ids
    assert list(cased_ids[0]) == cased("The Cat SAT .", add_special_tokens=False).input_ids
    assert list(lower_ids[0]) != list(cased_ids[0])
    assert len(list((cache / "tokens").iterdir())) == 4

    corpus.write_text("only one line now .\n")  # new size and mtime: rebuilt, never reused
    assert len(cached_token_ids(str(corpus), "train", tokenizer, 6, cache_dir=cache)) == 1


def test_a_damaged_cache_is_a_one_line_error_naming_it(tmp_path, corpus, tokenizer):
    cache = tmp_path / "cache"
    cached_token_ids(str(corpus), "train", tokenizer, 6, cache_dir=cache)
    path = cache_path(str(corpus), "train", tokenizer, 6, cache)
    for arrow in path.glob("*.arrow"):
        arrow.write_bytes(b"garbage" * 10)
    with pytest.raises(UsageError) as error:
        cached_token_ids(str(corpus), "train", tokenizer, 6, cache_dir=cache)
    message = str(error.value)
    assert "\n" not in message and str(path) in message and f"rm -r {path}" in message
    (path / "diffusionbert.json").write_text("{not json")
    with pytest.raises(UsageError, match="damaged"):
        load_cache(path)


def test_cache_root_from_argument_environment_or_home(tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFUSIONBERT_CACHE", str(tmp_path / "env"))
    assert cache_root() == tmp_path / "env"
    assert cache_root(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("DIFFUSIONBERT_CACHE")
    assert cache_root().parts[-2:] == (".cache", "diffusionbert")


def test_other_ranks_load_after_the_barrier_what_rank_zero_built(tmp_path, corpus, tokenizer):
    cache = tmp_path / "cache"
    events = []
    with pytest.raises(UsageError, match="damaged"):  # rank 1 alone: nothing was built
        cached_token_ids(str(corpus), "train", tokenizer, 6, cache, rank=1,
                         barrier=lambda: events.append("barrier"))  # fmt: skip
    assert events == ["barrier"]
    first = cached_token_ids(str(corpus), "train", tokenizer, 6, cache, rank=0,
                             barrier=lambda: events.append("rank0"))  # fmt: skip
    second = cached_token_ids(str(corpus), "train", tokenizer, 6, cache, rank=1,
                              barrier=lambda: events.append("rank1"))  # fmt: skip
    assert events == ["barrier", "rank0", "rank1"] and len(first) == len(second)


def test_fetch_equals_collate_rows_for_text_and_seq2seq_rows(tmp_path, corpus, tokenizer):
    train, dev = training_data(tokenizer, str(corpus), None, None, 6, 0, 7, 3, cache_dir=tmp_path)
    assert len(train) == 53 and len(dev) == 7
    for indices in ([0, 5, 52, 5], list(range(53)), [17]):
        x0, mask = fetch(train, indices, tokenizer.pad_token_id)
        ref_x0, ref_mask = collate_rows(train[indices], tokenizer.pad_token_id)
        assert torch.equal(x0, ref_x0) and torch.equal(mask, ref_mask) and x0.dtype == torch.long
    import datasets

    pairs = datasets.Dataset.from_dict(
        {"input_ids": [[5, 6, 7, 8], [9, 10], [1, 2, 3]], "source_length": [1, 1, 2]}
    )
    x0, mask = fetch(pairs.select([2, 0]), [0, 1], 0)
    ref = collate_rows(pairs.select([2, 0])[[0, 1]], 0)
    assert torch.equal(x0, ref[0]) and torch.equal(mask, ref[1])


def test_holdout_is_deterministic_disjoint_and_complete(tmp_path, corpus, tokenizer):
    data = cached_token_ids(str(corpus), "train", tokenizer, 6, cache_dir=tmp_path)
    train, dev = holdout(data, 0.1, seed=4)
    assert len(dev) == 6 and len(train) == 54
    train_rows = train._indices.column(0).to_pylist()
    dev_rows = dev._indices.column(0).to_pylist()
    assert sorted(train_rows + dev_rows) == list(range(60))
    assert holdout(data, 0.1, seed=4)[1]._indices.column(0).to_pylist() == dev_rows
    assert length_histogram(train, 6).sum() == 54
    with pytest.raises(UsageError, match="leaves no training data"):
        holdout(data, 60, seed=0)


def test_batch_plan_is_a_pure_function_and_draws_once_per_epoch(monkeypatch):
    plan = BatchPlan(num_examples=1000, micro_batch=8, world_size=2, accumulation=2, seed=5)
    fresh = BatchPlan(num_examples=1000, micro_batch=8, world_size=2, accumulation=2, seed=5)
    assert plan.indices(100, 1, 1) == fresh.indices(100, 1, 1)  # resume: same indices
    calls = []
    randperm = torch.randperm
    monkeypatch.setattr(torch, "randperm", lambda *a, **k: calls.append(1) or randperm(*a, **k))
    for step in range(plan.steps_per_epoch):
        for micro in range(2):
            for rank in range(2):
                plan.indices(step, micro, rank)
    assert len(calls) == 1
    epoch = [plan.indices(s, m, r) for s in range(31) for m in range(2) for r in range(2)]
    flat = [i for batch in epoch for i in batch]
    assert len(flat) == len(set(flat)) == 31 * 32
    assert plan.indices(31, 0, 0) != plan.indices(0, 0, 0)


def test_count_ids_equals_counting_the_texts(tmp_path, corpus, tokenizer):
    data = cached_token_ids(str(corpus), "train", tokenizer, 64, cache_dir=tmp_path)
    counts = count_ids(data, len(tokenizer))
    assert torch.equal(counts, count_tokens(load_texts(str(corpus)), tokenizer))
    assert counts.dtype == torch.int64 and counts.sum() == sum(len(r) for r in data["input_ids"])
    assert np.count_nonzero(counts.numpy()) > 5
