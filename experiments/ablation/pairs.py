"""The paper's ordered pairs of the ablation against ours: each pair at the checkpoint level
(the first seeds, paired sentence by sentence) and at the recipe level (every seed,
``evaluation.recipes``), labelled confirmed, reversed or undecided by its interval; and the rows'
dev-bound order at the last two evaluations."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np

from common.errors import UsageError
from evaluation.compare import check_comparable, paired
from evaluation.recipes import recipe_difference
from experiments.ablation.rows import (
    Rows,
    mean_nats_per_word,
    paired_bound,
    row_se,
    sentence_record,
)


def paired_figures(first: dict, second: dict, a: str, b: str, folder: Path | None) -> dict:
    """``evaluation.compare.paired`` per word of two records, refused in one line naming the
    folder when they are not comparable."""
    try:
        check_comparable(first, second, a, b)
    except UsageError as error:
        raise UsageError(f"{folder}: {error}") from None
    return paired(first, second)["per_word"]


def label(paper: float, interval: list[float]) -> str:
    """``confirmed`` (our interval excludes 0 on the paper's side), ``reversed`` (on the other
    side) or ``undecided`` (it contains 0)."""
    low, high = interval
    if low > 0 or high < 0:
        return "confirmed" if (paper < 0) == (high < 0) else "reversed"
    return "undecided"


def paper_pairs(rows: Rows, folder: Path | None = None) -> list[dict]:
    """Every pair of rows the paper reports, with its order and ours (discrete bound, per
    word). ``agrees`` is whether both put the same row lower; ``margin_se`` is our difference
    over the combined standard error over sequences (unpaired, so conservative). Where both
    rows' first seeds have per-sentence values (``folder``: the results' folder), also the
    paired difference of those two runs (same sentences, same noise), its 95% interval and
    ``label``: the checkpoint level. Where both rows have several seeds, ``recipe``: the
    recipe-level difference (``recipe_level``) and its label."""
    reported = {name: runs[0]["paper_ppl_per_word"] for name, runs in rows.items()}
    names = [name for name, ppl in reported.items() if ppl is not None]
    pairs = []
    for a, b in itertools.combinations(names, 2):
        ours = mean_nats_per_word(rows[a]) - mean_nats_per_word(rows[b])
        se = math.hypot(row_se(rows[a], folder), row_se(rows[b], folder))
        paper = math.log(reported[a]) - math.log(reported[b])
        pairs.append(
            {
                "pair": (a, b),
                "paper": paper,
                "ours": ours,
                "agrees": (paper < 0) == (ours < 0),
                "margin_se": abs(ours) / se,
            }
        )
        bound = paired_bound(rows[a], folder) if folder else "discrete"
        first = sentence_record(rows[a][0], folder, bound)
        second = sentence_record(rows[b][0], folder, bound)
        if first is not None and second is not None:
            figures = paired_figures(first, second, a, b, folder)
            pairs[-1]["paired"] = {
                "bound": bound,
                "sentences": len(first["sentences"]["id"]),
                "difference": figures["difference"],
                "interval": figures["interval"],
                "paired_se": figures["paired_se"],
                "unpaired_se": figures["unpaired_se"],
                "label": label(paper, figures["interval"]),
            }
        recipe = recipe_level(rows, a, b, folder)
        if recipe is not None:
            pairs[-1]["recipe"] = {**recipe, "label": label(paper, recipe["interval"])}
    return pairs


def recipe_level(rows: Rows, a: str, b: str, folder: Path | None) -> dict | None:
    """Row a − row b as recipes (``evaluation.recipes.recipe_difference``, per word): the
    seeds both rows have per-sentence values of, paired by seed, on the bound with more
    sentences; its interval counts the training seeds, the shared sentences and the draws.
    None with fewer than two such seeds (a one-seed row is one checkpoint, not a recipe)."""
    if folder is None:
        return None
    bound = paired_bound(rows[a], folder)
    seeds_b = {run["seed"]: run for run in rows[b]}
    pairs = []
    for run in rows[a]:
        other = seeds_b.get(run["seed"])
        first = sentence_record(run, folder, bound)
        second = sentence_record(other, folder, bound) if other else None
        if first is not None and second is not None:
            check_comparable(first, second, f"{a} seed {run['seed']}", f"{b} seed {run['seed']}")
            pairs.append((run["seed"], first, second))
    if len(pairs) < 2:
        return None
    ids = pairs[0][1]["sentences"]["id"]
    for seed, first, _ in pairs[1:]:
        check_comparable(pairs[0][1], first, f"{a} seed {pairs[0][0]}", f"{a} seed {seed}")

    def aligned(record: dict) -> list[float]:
        order = {sid: i for i, sid in enumerate(record["sentences"]["id"])}
        return [record["sentences"]["nats"][order[sid]] for sid in ids]

    nats_a = np.array([aligned(first) for _, first, _ in pairs])
    nats_b = np.array([aligned(second) for _, _, second in pairs])
    words = np.array(pairs[0][1]["sentences"]["words"], dtype=np.float64)
    figures = recipe_difference(nats_a, nats_b, words, paired=True)
    noise = [first.get("noise", {}).get("seed") for _, first, _ in pairs]
    return {"bound": bound, "sentences": len(ids), "seeds": [seed for seed, _, _ in pairs],
            "shared_noise": len(set(noise)) < len(noise), **figures}  # fmt: skip


def dev_orderings(rows: Rows) -> tuple[list[int], list[list[str]]]:
    """The last two dev steps every run evaluated, and the rows ordered (best first) by the dev
    bound of their first seed at each: runs with the same seed hold out the same training
    sentences and draw the same noise, so their dev bounds compare sentence for sentence."""
    first = {name: dict(runs[0]["dev_curve"]) for name, runs in rows.items()}
    last_two = sorted(set.intersection(*(set(curve) for curve in first.values())))[-2:]
    orders = [sorted(first, key=lambda name: first[name][step]) for step in last_two]
    return last_two, orders
