"""The ablation's results (experiments.ablation) as the README shows them: one table row per grid
row (mean over seeds), the paper's pairwise orderings checked against ours at the checkpoint
level (first seeds) and the recipe level (every seed; evaluation.recipes), the headline rows'
seed-to-seed spread, and whether the dev-bound ordering still moves between the last two
evaluations.

python3 -m experiments.ablation.table [results.jsonl]   prints the summary (Markdown)
"""

from __future__ import annotations

import itertools
import json
import math
import statistics
from pathlib import Path

import numpy as np

from common.cli import Parser
from common.errors import UsageError, exit_on_usage_error
from common.files import read_jsonl
from evaluation.compare import check_comparable, paired
from evaluation.recipes import recipe_difference
from evaluation.records import check_record
from evaluation.stats import ratio_se

Rows = dict[str, list[dict]]


FIELDS = ("row", "seed", "paper_ppl_per_word", "continuous", "dev_curve")
# Not in every run: with --checkpoint_figures first only a row's first seed has them.
CHECKPOINT_FIELDS = ("discrete", "samples")


def check_records(records: list[dict], path: Path) -> None:
    """Each record has the fields ``summary`` reads; else one line naming the file's line."""
    for number, record in enumerate(records, 1):
        missing = [field for field in FIELDS if field not in record]
        if missing:
            raise UsageError(
                f"{path}: run {number} lacks {', '.join(missing)}; it was not written by "
                "experiments.ablation: remove it and rerun `bash run.sh ablation`"
            )


def by_row(records: list[dict]) -> Rows:
    """{row name: its runs (one per seed)}, in the order of the results file."""
    rows: Rows = {}
    for record in records:
        rows.setdefault(record["row"], []).append(record)
    return rows


def having(runs: list[dict], field: str) -> list[dict]:
    """The runs that carry ``field`` (the discrete bound and the samples may be on a row's
    first seed only)."""
    return [run for run in runs if field in run]


def mean_nats_per_word(runs: list[dict], bound: str = "discrete") -> float:
    """Mean over the seeds that have it of a row's bound in nats per word (NaN: none has)."""
    values = [run[bound]["nats_per_word"] for run in having(runs, bound)]
    return statistics.fmean(values) if values else math.nan


def seed_range(runs: list[dict]) -> tuple[float, float]:
    """(min, max) over seeds of the discrete bound, nats per word."""
    values = [run["discrete"]["nats_per_word"] for run in having(runs, "discrete")]
    return (min(values), max(values)) if values else (math.nan, math.nan)


def sentence_record(run: dict, folder: Path | None, bound: str) -> dict | None:
    """One run's ``bound`` record with per-sentence values (its ``sentences_file`` beside the
    results), or None where the run predates them or lacks that bound."""
    name = run.get("sentences_file")
    if folder is None or not name:
        return None
    path = folder / name
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise UsageError(
            f"{path}: cannot be read ({error}); rerun `bash run.sh ablation`"
        ) from None
    record = stored.get(bound) if isinstance(stored, dict) else None
    if not record or not record.get("sentences"):
        return None
    check_record(record, f"{path} ({bound})")
    return record


def paired_bound(runs: list[dict], folder: Path | None) -> str:
    """The bound the paired intervals use: the one with the most sentences in the first run's
    per-sentence file (the cheaper continuous bound is run on more), discrete on a tie."""
    sizes = {}
    for bound in ("discrete", "continuous"):
        record = sentence_record(runs[0], folder, bound)
        sizes[bound] = len(record["sentences"]["id"]) if record else 0
    return "continuous" if sizes["continuous"] > sizes["discrete"] else "discrete"


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


def run_se(run: dict, folder: Path | None, bound: str = "discrete", unit: str = "word") -> float:
    """A run's standard error per word (or token) over its test sentences: the ratio
    estimator's from its per-sentence values where the results' folder has them, else the
    figure its record carries."""
    record = sentence_record(run, folder, bound) if folder is not None else None
    if record is None:
        return run[bound][f"nats_per_{unit}_se"]
    columns = record["sentences"]
    return ratio_se(columns["nats"], columns[f"{unit}s"])


def row_se(runs: list[dict], folder: Path | None, unit: str = "word") -> float:
    """Mean over a row's seeds of ``run_se`` (discrete bound)."""
    runs = having(runs, "discrete")
    if not runs:
        return math.nan
    return statistics.fmean(run_se(run, folder, "discrete", unit) for run in runs)


def table(rows: Rows, folder: Path | None = None) -> list[str]:
    head = (
        "| row | seeds | PPL/word, discrete (nats/word ± s.e.) | PPL/word, continuous | "
        "nats/token, discrete ± s.e. | BLEU | self-BLEU | dist-1 | div-4 | paper PPL |"
    )
    lines = [head, "|" + "---|" * 10]
    for name, runs in rows.items():
        d = mean_nats_per_word(runs)
        se = row_se(runs, folder)
        c = mean_nats_per_word(runs, "continuous")
        discrete = having(runs, "discrete")
        tok = statistics.fmean(r["discrete"]["nats_per_token"] for r in discrete) if discrete \
            else math.nan  # fmt: skip
        tok_se = row_se(runs, folder, "token")
        sampled = having(runs, "samples")
        keys = ("bleu", "self_bleu", "dist_1", "div_4")
        s = {k: statistics.fmean(r["samples"][k] for r in sampled) if sampled else math.nan
             for k in keys}  # fmt: skip
        paper = runs[0]["paper_ppl_per_word"]
        lines.append(
            f"| {name} | {len(runs)} | {math.exp(d):,.0f} ({d:.3f} ± {se:.3f}) | "
            f"{math.exp(c):,.0f} | {tok:.3f} ± {tok_se:.3f} | {s['bleu']:.3f} | "
            f"{s['self_bleu']:.3f} | {s['dist_1']:.3f} | {s['div_4']:.3f} | "
            f"{'—' if paper is None else f'{paper:.2f}'} |"
        )
    return lines


def earlier_grids(folder: Path) -> dict[str, list[dict]]:
    """{subfolder name: its records} for every ``<folder>/<name>/results.jsonl``: the grids
    kept beside this one (another budget, another machine); a damaged one is skipped."""
    grids = {}
    for path in sorted(folder.glob("*/results.jsonl")):
        try:
            records = read_jsonl(path)
            check_records(records, path)
        except UsageError:
            continue
        if records:
            grids[path.parent.name] = records
    return grids


def budget_table(records: list[dict], earlier: dict[str, list[dict]]) -> list[str]:
    """Each row's discrete bound (nats/word, mean over its seeds; the seeds in brackets) in
    the earlier grids (fewest steps first) and in this one, side by side, and this grid's
    change from the first grid that has the row."""

    def steps(runs: list[dict]) -> str:
        budget = runs[0].get("budget", {}).get("steps")
        precision = runs[0].get("precision")
        return f"{budget} steps" + (f", {precision}" if precision else "")

    ordered = sorted(earlier.items(), key=lambda item: (item[1][0].get("budget", {}).get(
        "steps", 0), item[0]))  # fmt: skip
    columns = [(label, by_row(runs), steps(runs)) for label, runs in ordered]
    columns.append(("this grid", by_row(records), steps(records)))
    head = "| row | " + " | ".join(f"{label} ({what})" for label, _, what in columns)
    lines = [head + " | change from the first |", "|" + "---|" * (len(columns) + 2)]
    for name in columns[-1][1]:
        cells = []
        for _, rows, _ in columns:
            runs = rows.get(name)
            cells.append(f"{mean_nats_per_word(runs):.3f} ({len(runs)})" if runs else "—")
        first = next((rows[name] for _, rows, _ in columns if name in rows), None)
        change = mean_nats_per_word(columns[-1][1][name]) - mean_nats_per_word(first)
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {change:+.3f} |")
    return lines


def summary(records: list[dict], folder: Path | None = None, earlier: dict | None = None) -> str:
    """The whole summary as Markdown; ``folder`` holds the runs' per-sentence files,
    ``earlier`` the grids kept beside this one ({label: records}, ``earlier_grids``)."""
    rows = by_row(records)
    lines = [
        "Mean over seeds; s.e. over test sentences (the ratio estimator's, the mean of the "
        "seeds'): it counts the sentences and draws of one checkpoint, not the seeds.",
        "",
    ]
    lines += table(rows, folder)
    if earlier:
        lines += [
            "",
            "Budgets side by side (discrete bound, nats/word, mean over the seeds in "
            "brackets; the same first test sentences):",
            "",
            *budget_table(records, earlier),
        ]
    pairs = paper_pairs(rows, folder)
    lines += [
        "",
        f"The {len(pairs)} pairs the paper orders (nats/word; paper: its log-PPL difference; "
        "ours: the difference of the rows' means over seeds, discrete bound). Two levels:",
        "- checkpoint level: the first seeds of both rows, paired sentence by sentence (same "
        "sentences, same noise); its interval counts the sentences and the draws, not the "
        "training seeds: it says which of two checkpoints is lower;",
        "- recipe level: every seed both rows have, paired by seed; its interval counts the "
        "training seeds, the shared sentences and the draws (evaluation.recipes); only where "
        "both rows have at least two seeds.",
        "",
    ]
    for p in pairs:
        a, b = p["pair"]
        line = f"- {a} vs {b}: paper {p['paper']:+.3f}, ours {p['ours']:+.3f}"
        if "paired" in p:
            q = p["paired"]
            low, high = q["interval"]
            line += (
                f"; checkpoint level ({q['bound']}, {q['sentences']} sentences): "
                f"{q['difference']:+.3f} [{low:+.3f}, {high:+.3f}] **{q['label']}**"
            )
        if "recipe" in p:
            q = p["recipe"]
            low, high = q["interval"]
            share = q["variance"]["seeds"] / max(sum(q["variance"].values()), 1e-300)
            line += (
                f"; recipe level ({len(q['seeds'])} seeds, {q['bound']}, {q['sentences']} "
                f"sentences): {q['difference']:+.3f} [{low:+.3f}, {high:+.3f}] "
                f"**{q['label']}** (seeds {100 * share:.0f}% of the variance"
                + ("; one noise seed shared by the seeds' pairs" if q["shared_noise"] else "")
                + ")"
            )
        else:
            line += "; recipe level: none (a row with one seed is one checkpoint)"
        lines.append(line)
    for level, key in (("Checkpoint level (first seeds)", "paired"), ("Recipe level", "recipe")):
        labelled = [p[key]["label"] for p in pairs if key in p]
        counts = {name: labelled.count(name) for name in ("confirmed", "reversed", "undecided")}
        lines += [
            "",
            f"{level}: "
            + ", ".join(f"{n} {name}" for name, n in counts.items())
            + f" of {len(labelled)} pairs"
            + (f"; {len(pairs) - len(labelled)} pairs have no such interval." if
               len(labelled) < len(pairs) else "."),
        ]  # fmt: skip
    seeded = {name: runs for name, runs in rows.items() if len(runs) > 1}
    if len(seeded) == 2:
        (a, ra), (b, rb) = seeded.items()
        (lo_a, hi_a), (lo_b, hi_b) = seed_range(ra), seed_range(rb)
        overlap = lo_a <= hi_b and lo_b <= hi_a
        lines += [
            "",
            f"Headline rows over {len(ra)} and {len(rb)} seeds (discrete, nats/word): "
            f"{a} {lo_a:.3f}–{hi_a:.3f}, {b} {lo_b:.3f}–{hi_b:.3f}; difference of means "
            f"{mean_nats_per_word(ra) - mean_nats_per_word(rb):+.3f}; the seed ranges "
            f"{'overlap' if overlap else 'do not overlap'}.",
        ]
    for record in records:
        if "table3" in record:
            points = sorted(record["table3"].items(), key=lambda item: int(item[0]))
            lines += ["", f"Table 3 analogue, {record['row']} seed {record['seed']}: per-word PPL "
                      "bound at " + ", ".join(f"{k} ELBO steps {v['ppl_per_word']:,.0f}"
                                              for k, v in points) + "."]  # fmt: skip
    steps, orders = dev_orderings(rows)
    if len(orders) == 2:
        moved = [
            (x, y)
            for x, y in itertools.combinations(orders[0], 2)
            if orders[1].index(x) > orders[1].index(y)
        ]
        lines += [
            "",
            f"Dev-bound order (first seeds) at step {steps[0]}: {' < '.join(orders[0])}.",
            f"At step {steps[1]}: {' < '.join(orders[1])}.",
            f"Pairs that swapped between the two: {len(moved)}"
            + (f" ({'; '.join(f'{x} / {y}' for x, y in moved)})." if moved else "."),
        ]
    return "\n".join(lines) + "\n"


def build_parser() -> Parser:
    p = Parser(prog="python3 -m experiments.ablation.table", description=__doc__.split("\n\n")[0])
    p.add_argument("results", nargs="?", default="experiments/ablation/results/results.jsonl",
                   help="experiments.ablation's results.jsonl (default: %(default)s)")  # fmt: skip
    return p


@exit_on_usage_error
def main(argv: list[str] | None = None) -> None:
    path = Path(build_parser().parse_args(argv).results)
    try:
        records = read_jsonl(path)
        check_records(records, path)
    except UsageError as error:
        raise UsageError(f"{error} (the results of `bash run.sh ablation`)") from None
    if not records:
        raise UsageError(f"{path}: no runs yet; run `bash run.sh ablation` first")
    print(summary(records, path.parent, earlier_grids(path.parent)), end="")


if __name__ == "__main__":
    main()
