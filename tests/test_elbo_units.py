"""Perplexity per word counts the dataset's own whitespace words (the paper's unit)."""

import datasets

from corpora import tokenize_texts

TEXTS = [
    "the teacher .",
    "u.s. gdp grew 3.5 % in 2009 , the report said .",
    "   ",
    "isn't it ?",
]


def test_words_are_the_whitespace_words_of_the_text(tokenizer):
    data = datasets.Dataset.from_dict({"text": TEXTS})
    encoded = tokenize_texts(data, tokenizer, 64, "test", count_words=True)
    kept = [t for t in TEXTS if t.strip()]
    assert encoded["num_words"] == [len(t.split()) for t in kept] == [3, 12, 3]
    # detokenised wordpieces would glue punctuation and split "u.s." and "3.5" instead
    decoded = [tokenizer.decode(ids) for ids in encoded["input_ids"]]
    assert [len(t.split()) for t in decoded] != encoded["num_words"]


def test_a_truncated_row_counts_the_words_its_tokens_cover(tokenizer):
    data = datasets.Dataset.from_dict({"text": ["the teacher sold a red horse ."]})
    encoded = tokenize_texts(data, tokenizer, 3, "test", count_words=True)
    assert len(encoded["input_ids"][0]) == 3
    assert encoded["num_words"] == [3]
    split_word = datasets.Dataset.from_dict({"text": ["unbelievably long words"]})
    pieces = tokenizer("unbelievably", add_special_tokens=False)["input_ids"]
    encoded = tokenize_texts(split_word, tokenizer, len(pieces) - 1, "test", count_words=True)
    assert encoded["num_words"] == [1]  # a partly covered word counts once


def test_without_count_words_only_ids_are_kept(tokenizer):
    data = datasets.Dataset.from_dict({"text": TEXTS})
    assert tokenize_texts(data, tokenizer, 64, "test").column_names == ["input_ids"]
