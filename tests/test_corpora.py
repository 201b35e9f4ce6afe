"""The toy grammar's exact probabilities, dataset loading and token counting."""

import itertools
import math
import random

import pytest
import torch

from common.errors import UsageError
from corpora import load_texts, tokenize_texts, toy
from corpora.counting import count_tokens, load_counts, save_counts


def test_splits_are_deterministic_and_large_enough():
    assert toy.split("test") == toy.split("test")
    assert len(toy.split("train")) >= 50000
    assert toy.split("validation") != toy.split("test")


def test_intransitive_sentences_sum_to_their_branch_probability():
    """Enumerate every NP REST [ADV] . sentence: their probabilities must add to P(REST)."""
    phrases = [
        " ".join(filter(None, (det, adj, noun)))
        for det in toy.CLASSES["DET"]
        for adj in (None, *toy.CLASSES["ADJ"])
        for noun in toy.CLASSES["NOUN"]
    ]
    total = 0.0
    for np_, verb, adv in itertools.product(
        phrases, toy.CLASSES["REST"], (None, *toy.CLASSES["ADV"])
    ):
        total += math.exp(toy.log_prob(" ".join(filter(None, (np_, verb, adv, ".")))))
    assert total == pytest.approx(toy.P_VP["REST"], rel=1e-9)


def test_sample_frequencies_match_exact_probabilities():
    sentences = toy.sample(200000, seed=11)
    counts = {}
    for s in sentences:
        counts[s] = counts.get(s, 0) + 1
    top = sorted(counts, key=counts.get, reverse=True)[:5]
    n = len(sentences)
    for s in top:
        p = math.exp(toy.log_prob(s))
        assert abs(counts[s] / n - p) < 5 * math.sqrt(p * (1 - p) / n)


def test_mean_nll_of_samples_matches_the_exact_entropy():
    sentences = toy.sample(20000, seed=3)
    nll = torch.tensor([-toy.log_prob(s) for s in sentences], dtype=torch.float64)
    se = nll.std().item() / math.sqrt(len(nll))
    assert abs(nll.mean().item() - toy.entropy()) < 4 * se


def test_ungrammatical_sentences_have_probability_zero():
    rng = random.Random(0)
    assert toy.log_prob("the old farmer sold a red horse to the baker.") > -math.inf
    shuffled = 0
    for s in toy.sample(200, seed=5):
        words = s.split()
        rng.shuffle(words)
        shuffled += toy.log_prob(" ".join(words)) == -math.inf
    assert shuffled > 150
    assert toy.log_prob("the farmer, slept .") == -math.inf
    assert toy.log_prob("") == -math.inf


def test_local_files_and_errors(tmp_path, tokenizer):
    txt = tmp_path / "a.txt"
    txt.write_text("a dog slept .\n\nthe cat smiled .\n")
    assert load_texts(str(txt))["text"] == ["a dog slept .", "the cat smiled ."]
    good = tmp_path / "b.jsonl"
    good.write_text('{"text": "a dog slept ."}\n{"text": "the cat smiled ."}\n')
    assert len(load_texts(str(good))) == 2
    bad = tmp_path / "c.jsonl"
    bad.write_text('{"text": "a dog slept ."}\n{"text": oops}\n')
    with pytest.raises(UsageError, match=r"c.jsonl:2: not valid JSON"):
        load_texts(str(bad))
    with pytest.raises(UsageError, match="not a file or folder"):
        load_texts(str(tmp_path / "nothing.txt"))
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    with pytest.raises(UsageError, match="no non-empty sentence"):
        tokenize_texts(load_texts(str(empty)), tokenizer, 16, str(empty))


def test_tokenised_rows_have_no_special_tokens_and_respect_max_length(tokenizer):
    data = tokenize_texts(load_texts("toy", "test"), tokenizer, 5, "toy")
    special = set(tokenizer.all_special_ids)
    for ids in data["input_ids"][:200]:
        assert 0 < len(ids) <= 5 and not special & set(ids)


def test_counts_equal_a_manual_count_and_round_trip(tmp_path, tokenizer):
    dataset = load_texts("toy", "test")
    counts = count_tokens(dataset, tokenizer, batch_size=300)
    manual = torch.zeros(len(tokenizer), dtype=torch.int64)
    for text in dataset["text"]:
        for i in tokenizer(text, add_special_tokens=False)["input_ids"]:
            manual[i] += 1
    assert torch.equal(counts, manual)
    save_counts(counts, tmp_path / "f.pt")
    assert torch.equal(load_counts(tmp_path / "f.pt", len(tokenizer)), counts)
    with pytest.raises(UsageError, match="another tokenizer"):
        load_counts(tmp_path / "f.pt", 100)
    with pytest.raises(UsageError, match=r"word_freq\.py"):
        load_counts(tmp_path / "missing.pt", 100)


def test_a_plain_pickle_as_word_counts_is_one_line_without_torchs_warning(tmp_path):
    import pickle
    import warnings

    from common.errors import UsageError
    from corpora.counting import load_counts

    path = tmp_path / "legacy.pt"
    path.write_bytes(pickle.dumps({"the": 3}, protocol=4))  # what older code wrote
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(UsageError, match=r"not a tensor file written by word_freq\.py"):
            load_counts(path, 3)
    assert not [w for w in seen if "pickle" in str(w.message)]
