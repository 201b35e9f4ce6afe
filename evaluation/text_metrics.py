"""Text-quality metrics of the paper and of DiffuSeq, exactly defined.

Texts are lists of tokens (see ``tokenize``). BLEU follows nltk's definitions to the last
detail (modified precision, closest reference length, brevity penalty, ``method0`` for a
zero precision); ``ReferenceSet`` precomputes the reference n-gram counts once, so BLEU of many
samples against a whole test set costs one pass over the references.
"""

from __future__ import annotations

import bisect
import math
import sys
from collections import Counter
from collections.abc import Sequence

from nltk.tokenize import wordpunct_tokenize
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

ORDER = 4
BLEU_CONVENTIONS = ("diffuseq", "standard")


def tokenize(text: str) -> list[str]:
    """Lower-cased words and punctuation (nltk ``wordpunct_tokenize``, no data download):
    'The baker.' and 'the baker .' give the same tokens."""
    return wordpunct_tokenize(text.lower())


def ngrams(tokens: Sequence[str], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def _closest(lengths: list[int], hyp_len: int) -> int:
    """nltk's closest_ref_length over sorted ``lengths``: nearest, the shorter on ties."""
    i = bisect.bisect_left(lengths, hyp_len)
    options = lengths[max(0, i - 1) : i + 1]
    return min(options, key=lambda r: (abs(r - hyp_len), r))


def _bleu(numerators: list[int], denominators: list[int], hyp_len: int, ref_len: int) -> float:
    if numerators[0] == 0:
        return 0.0
    if hyp_len > ref_len:
        bp = 1.0
    elif hyp_len == 0:
        bp = 0.0
    else:
        bp = math.exp(1 - ref_len / hyp_len)
    logs = [
        math.log(num / den) if num else math.log(sys.float_info.min)
        for num, den in zip(numerators, denominators, strict=True)
    ]
    return bp * math.exp(math.fsum(logs) / ORDER)


class ReferenceSet:
    """BLEU-4 of single hypotheses against one shared set of references.

    ``bleu(hyp)`` equals ``nltk.translate.bleu_score.corpus_bleu([refs], [hyp])``; with
    ``exclude`` = i, reference i is left out (self-BLEU), using the two largest counts of each
    n-gram so that leaving one out costs nothing.
    """

    def __init__(self, references: Sequence[Sequence[str]]):
        self.best: list[dict[tuple, tuple[int, int, int]]] = []
        for n in range(1, ORDER + 1):
            best: dict[tuple, tuple[int, int, int]] = {}
            for index, ref in enumerate(references):
                for gram, count in ngrams(ref, n).items():
                    top, owner, second = best.get(gram, (0, -1, 0))
                    if count > top:
                        best[gram] = (count, index, top)
                    elif count > second:
                        best[gram] = (top, owner, count)
            self.best.append(best)
        self.lengths = sorted(len(r) for r in references)
        self.length_set = sorted(set(self.lengths))

    def _max_count(self, n: int, gram: tuple, exclude: int | None) -> int:
        top, owner, second = self.best[n - 1].get(gram, (0, -1, 0))
        return second if owner == exclude else top

    def _ref_len(self, hyp_len: int, own_len: int | None) -> int:
        if own_len is None:
            return _closest(self.length_set, hyp_len)
        lengths = list(self.lengths)
        lengths.remove(own_len)
        return _closest(sorted(set(lengths)), hyp_len)

    def bleu(
        self, hyp: Sequence[str], exclude: int | None = None, own_len: int | None = None
    ) -> float:
        numerators, denominators = [], []
        for n in range(1, ORDER + 1):
            counts = ngrams(hyp, n)
            numerators.append(
                sum(min(c, self._max_count(n, g, exclude)) for g, c in counts.items())
            )
            denominators.append(max(1, sum(counts.values())))
        return _bleu(numerators, denominators, len(hyp), self._ref_len(len(hyp), own_len))


def mean_bleu(hypotheses: Sequence[Sequence[str]], references: Sequence[Sequence[str]]) -> float:
    """Paper BLEU-4: each sample against ALL references, averaged over samples."""
    if not hypotheses or not references:
        return 0.0
    refs = ReferenceSet(references)
    return sum(refs.bleu(h) for h in hypotheses) / len(hypotheses)


def self_bleu(samples: Sequence[Sequence[str]]) -> float:
    """Each sample against all OTHER samples (BLEU-4), averaged; 0 for fewer than 2."""
    if len(samples) < 2:
        return 0.0
    refs = ReferenceSet(samples)
    return sum(refs.bleu(s, exclude=i, own_len=len(s)) for i, s in enumerate(samples)) / len(
        samples
    )


def dist_1(texts: Sequence[Sequence[str]]) -> float:
    """Distinct unigrams / unigrams per sentence, averaged; an empty sentence counts 0."""
    if not texts:
        return 0.0
    return sum(len(set(t)) / len(t) if t else 0.0 for t in texts) / len(texts)


def pooled_distinct(texts: Sequence[Sequence[str]], n: int) -> float:
    """Distinct n-grams / n-grams over all ``texts`` together (0 when there are none): for a
    source's candidates, how different they are from each other (identical candidates score
    1 / their number)."""
    grams = Counter()
    for t in texts:
        grams.update(ngrams(t, n))
    total = sum(grams.values())
    return len(grams) / total if total else 0.0


def div_4(texts: Sequence[Sequence[str]]) -> float:
    """Distinct 4-grams / 4-grams over all texts (0 when there are none)."""
    return pooled_distinct(texts, 4)


def unigram_entropy(texts: Sequence[Sequence[str]]) -> float:
    """Entropy (nats) of the unigram distribution of all tokens of all texts."""
    counts = Counter(token for t in texts for token in t)
    total = sum(counts.values())
    return -sum(c / total * math.log(c / total) for c in counts.values()) if total else 0.0


def mean_length(texts: Sequence[Sequence[str]]) -> float:
    return sum(len(t) for t in texts) / len(texts) if texts else 0.0


def sentence_bleu4(hyp: Sequence[str], ref: Sequence[str], convention: str = "diffuseq") -> float:
    """DiffuSeq's sentence BLEU with SmoothingFunction().method4.

    ``diffuseq`` reproduces its published numbers: it passes the generated text as the
    reference and the gold text as the hypothesis. ``standard`` is the usual order.
    """
    if convention not in BLEU_CONVENTIONS:
        raise ValueError(f"--bleu_convention {convention!r}: choose diffuseq or standard")
    if not hyp or not ref:
        return 0.0
    smoothing = SmoothingFunction().method4
    if convention == "diffuseq":
        return sentence_bleu([list(hyp)], list(ref), smoothing_function=smoothing)
    return sentence_bleu([list(ref)], list(hyp), smoothing_function=smoothing)


def rouge_l(hyps: Sequence[str], refs: Sequence[str]) -> float:
    """Mean ROUGE-L F-measure (the ``rouge-score`` package) over aligned text pairs."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"])
    if not hyps:
        return 0.0
    scores = [scorer.score(r, h)["rougeL"].fmeasure for h, r in zip(hyps, refs, strict=True)]
    return sum(scores) / len(hyps)


def candidate_self_bleu(candidate_sets: Sequence[Sequence[Sequence[str]]]) -> float:
    """DiffuSeq self-BLEU: within each source's candidates, every ordered pair (i ≠ j) with
    sentence BLEU (method4), averaged per source, then over sources with ≥ 2 candidates."""
    scores = []
    for candidates in candidate_sets:
        pairs = [
            sentence_bleu4(a, b, "standard")
            for i, a in enumerate(candidates)
            for j, b in enumerate(candidates)
            if i != j
        ]
        if pairs:
            scores.append(sum(pairs) / len(pairs))
    return sum(scores) / len(scores) if scores else 0.0


def mbr_select(candidates: Sequence[Sequence[str]]) -> int:
    """Minimum-Bayes-risk choice: the index of the candidate with the highest summed sentence
    BLEU-4 (method4) against every other candidate as reference; the first one on ties."""
    scores = [
        sum(sentence_bleu4(a, b, "standard") for j, b in enumerate(candidates) if j != i)
        for i, a in enumerate(candidates)
    ]
    return max(range(len(candidates)), key=lambda i: (scores[i], -i)) if candidates else 0


def conditional_scores(
    generated: Sequence[str],
    references: Sequence[str],
    candidate_sets: Sequence[Sequence[str]] | None = None,
    convention: str = "diffuseq",
) -> dict[str, float]:
    """DiffuSeq's seq2seq metrics of aligned (generated, reference) texts: mean sentence BLEU-4,
    ROUGE-L, dist-1 and div-4 of the outputs, and self-BLEU within each source's candidates.
    Texts are split with ``tokenize`` (lower-cased words and punctuation)."""
    hyps = [tokenize(t) for t in generated]
    refs = [tokenize(t) for t in references]
    bleu = [sentence_bleu4(h, r, convention) for h, r in zip(hyps, refs, strict=True)]
    scores = {
        "bleu": sum(bleu) / max(len(bleu), 1),
        "rouge_l": rouge_l(generated, references),
        "dist_1": dist_1(hyps),
        "div_4": div_4(hyps),
    }
    if candidate_sets is not None:
        sets = [[tokenize(c) for c in cands] for cands in candidate_sets]
        scores["self_bleu"] = candidate_self_bleu(sets)
    return scores
