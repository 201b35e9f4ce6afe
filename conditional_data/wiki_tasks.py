"""Two real-English seq2seq tasks built offline from ``wiki-summaries`` (``corpora.wiki``).

- ``wiki-keywords`` (concept-to-text, like CommonGen): the source is 3–6 content words of a
  sentence (lower-cased, ``STOPWORDS`` removed, each once), in alphabetical order so that the
  sentence's word order does not leak; the target is the sentence. How many words, and which,
  is drawn by a generator seeded with the sentence's SHA-256, so the folder is the same on
  every machine.
- ``wiki-next`` (open-ended, like Commonsense Conversation): the source is a sentence, the
  target the next sentence of the same article.

Both keep sentences of ``MIN_WORDS`` to ``MAX_WORDS`` whitespace words, and are split by
article exactly as ``wiki-summaries`` is (``corpora.wiki.split_of``), so no article is in two
splits. The text is Wikipedia's, CC BY-SA (docs/seq2seq.md).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import random
import re

from common.errors import UsageError
from corpora import wiki

MIN_WORDS, MAX_WORDS = 6, 30
MIN_KEYWORDS, MAX_KEYWORDS = 3, 6
SPLITS = {"train": "train", "valid": "validation", "test": "test"}  # DiffuSeq → wiki
# A short English stopword list (articles, pronouns, auxiliaries, prepositions, conjunctions
# and a few frequent adverbs), fixed here so that the tasks need no download.
_STOPWORDS = """
a about above after again against all also am an and any are as at be became because been
before being below between both but by can could did do does doing down during each few for
from further had has have having he her here hers herself him himself his how i if in into is
it its itself just me more most my myself no nor not now of off on once only or other our ours
ourselves out over own same she should so some such than that the their theirs them
themselves then there these they this those through to too under until up very was we were
what when where which while who whom why will with would you your yours yourself yourselves
one two three first many may might must shall since though upon within without among
"""
STOPWORDS = frozenset(_STOPWORDS.split())
WORD = re.compile(r"[a-z][a-z'-]*[a-z]|[a-z]")


def content_words(sentence: str) -> list[str]:
    """The sentence's lower-cased words of 3 letters or more that are not stopwords, each once,
    in the order they appear."""
    seen: dict[str, None] = {}
    for word in WORD.findall(sentence.lower()):
        if len(word) >= 3 and word not in STOPWORDS:
            seen.setdefault(word)
    return list(seen)


def keywords(sentence: str) -> list[str]:
    """3–6 content words of ``sentence``, alphabetically; UsageError when it has fewer than 3."""
    words = content_words(sentence)
    if len(words) < MIN_KEYWORDS:
        raise UsageError(
            f"keywords: {sentence!r} has {len(words)} content word(s) (stopwords removed); a "
            f"wiki-keywords source needs at least {MIN_KEYWORDS}"
        )
    rng = random.Random(hashlib.sha256(sentence.encode("utf-8")).digest())
    count = rng.randint(MIN_KEYWORDS, min(MAX_KEYWORDS, len(words)))
    return sorted(rng.sample(words, count))


def fits(sentence: str) -> bool:
    return MIN_WORDS <= len(sentence.split()) <= MAX_WORDS


@functools.cache
def _article_sentences(split: str) -> tuple[tuple[str, ...], ...]:
    texts = wiki.articles()
    return tuple(tuple(wiki.sentences(texts[t])) for t in wiki.split_articles(SPLITS[split]))


def keyword_pairs(split: str) -> dict[str, list[str]]:
    """``{"src": keywords, "trg": sentence}`` of a split (train, valid, test)."""
    src, trg = [], []
    for article in _article_sentences(split):
        for sentence in article:
            if fits(sentence) and len(content_words(sentence)) >= MIN_KEYWORDS:
                src.append(" ".join(keywords(sentence)))
                trg.append(sentence)
    return {"src": src, "trg": trg}


def next_pairs(split: str) -> dict[str, list[str]]:
    """``{"src": sentence, "trg": the next sentence of its article}`` of a split."""
    src, trg = [], []
    for article in _article_sentences(split):
        for first, second in itertools.pairwise(article):
            if fits(first) and fits(second):
                src.append(first)
                trg.append(second)
    return {"src": src, "trg": trg}


BUILDERS = {"wiki-keywords": keyword_pairs, "wiki-next": next_pairs}


def pairs(task: str, split: str) -> dict[str, list[str]]:
    """The pairs of a wiki task's split (``train``, ``valid`` or ``test``)."""
    if split not in SPLITS:
        raise UsageError(f"--split {split!r} is unknown: choose {', '.join(SPLITS)}")
    return BUILDERS[task](split)
