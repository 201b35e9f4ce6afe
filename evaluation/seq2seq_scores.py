"""What a seq2seq run reports, corpus-wide and source by source: ``seq2seq_figures`` (the corpus
figures and the per-source columns that ``evaluation.compare_outputs`` pairs), with CommonGen's
keyword ``coverage`` and the distinct n-grams pooled over one source's candidates."""

from __future__ import annotations

from collections.abc import Sequence

from evaluation.text_metrics import (
    candidate_self_bleu,
    conditional_scores,
    div_4,
    pooled_distinct,
    sentence_bleu4,
    tokenize,
)


def coverage(keywords: Sequence[str], output: str) -> float:
    """CommonGen's coverage: the share of the source's keywords that occur as words of
    ``output``, its words read by the rule that made the keywords
    (``conditional_data.wiki_tasks.WORD`` on the lower-cased text: "well-known" and
    "o'brien" stay whole); 0 for no keywords."""
    from conditional_data.wiki_tasks import WORD

    words = set(WORD.findall(output.lower()))
    return sum(k.lower() in words for k in keywords) / len(keywords) if keywords else 0.0


def per_source_scores(
    sources: Sequence[str],
    generated: Sequence[str],
    references: Sequence[str],
    candidate_sets: Sequence[Sequence[str]] | None = None,
    convention: str = "diffuseq",
    keywords: bool = False,
) -> dict[str, list]:
    """Columns, one entry per source: the source text, sentence BLEU-4 and ROUGE-L of the
    output against the reference, with ``keywords`` the coverage of the source's words
    (a wiki-keywords source is its keywords, space-separated), and with candidates their
    self-BLEU, distinct unigrams and div-4 pooled over the source's candidates. What
    ``evaluation.compare_outputs`` pairs, source by source."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"])
    hyps = [tokenize(t) for t in generated]
    refs = [tokenize(t) for t in references]
    out: dict[str, list] = {
        "source": list(sources),
        "bleu": [sentence_bleu4(h, r, convention) for h, r in zip(hyps, refs, strict=True)],
        "rouge_l": [
            scorer.score(r, h)["rougeL"].fmeasure
            for h, r in zip(generated, references, strict=True)
        ],
    }
    if keywords:
        out["coverage"] = [coverage(s.split(), g) for s, g in zip(sources, generated, strict=True)]
    if candidate_sets is not None:
        sets = [[tokenize(c) for c in cands] for cands in candidate_sets]
        out["self_bleu"] = [candidate_self_bleu([c]) for c in sets]
        out["distinct_1"] = [pooled_distinct(c, 1) for c in sets]
        out["div_4"] = [div_4(c) for c in sets]
    return out


def seq2seq_figures(
    sources: Sequence[str],
    outputs: Sequence[str],
    references: Sequence[str],
    candidate_sets: Sequence[Sequence[str]],
    convention: str = "diffuseq",
    keywords: bool = False,
) -> tuple[dict[str, float], dict[str, list]]:
    """What predict_downstream_condition.py reports: the corpus figures
    (``conditional_scores``, with several candidates per source ``bleu_single``, the first
    candidate's BLEU, with ``keywords`` the coverage, and ``copy_source_bleu``, the BLEU of
    copying the source) and the ``per_source_scores`` columns."""
    sets = candidate_sets if max(map(len, candidate_sets), default=0) > 1 else None
    scores = conditional_scores(outputs, references, sets, convention)
    per_source = per_source_scores(sources, outputs, references, sets, convention, keywords)
    if sets is not None:  # MBR against one candidate (the first drawn), source by source
        first = [row[0] for row in candidate_sets]
        per_source["bleu_single"] = per_source_scores(sources, first, references, None,
                                                      convention)["bleu"]  # fmt: skip
        scores["bleu_single"] = sum(per_source["bleu_single"]) / len(first)
    if "coverage" in per_source:
        scores["coverage"] = sum(per_source["coverage"]) / len(outputs)
    scores["copy_source_bleu"] = conditional_scores(sources, references, None, convention)["bleu"]
    return scores, per_source
